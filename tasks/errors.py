"""The exceptions a handler raises to tell the platform what to do with a failure."""

from __future__ import annotations

from typing import Any


class PermanentError(Exception):
    """Retrying cannot help (bad input, a missing resource): the job ends now."""


class RetryableError(Exception):
    """A passing fault: retry, after ``delay_ms`` if given, else after the platform's backoff."""

    def __init__(self, message: str = "", *, delay_ms: int | None = None):
        super().__init__(message)
        self.delay_ms = delay_ms


class FanOut(Exception):  # an instruction, not an error
    """Raised by ``JobContext.fan_out``: the job waits for these child jobs, (type, payload) each."""

    def __init__(self, children: list[tuple[str, dict[str, Any]]]):
        super().__init__(f"{len(children)} child jobs")
        self.children = children


class JobCancelledError(Exception):
    """Raised inside a handler when the job was cancelled while it ran."""
