"""The core's errors: one small tree, so each caller maps a kind of failure once.

The API turns each kind into one HTTP status (``api/errors.py``) and the CLI into one message
and exit code; the task-facing ``PermanentError`` and ``RetryableError`` live in ``tasks``.
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """A failure the core raises on purpose, with a message fit to show the caller."""


class NotFoundError(ConveyorError, LookupError):
    """The id names nothing (HTTP 404)."""


class JobNotFoundError(NotFoundError):
    """No job has this id."""


class DeadLetterNotFoundError(NotFoundError):
    """No dead letter has this id."""


class TokenNotFoundError(NotFoundError):
    """No API token has this id."""


class StoredFileNotFoundError(NotFoundError):
    """No file has this id."""


class ScheduleNotFoundError(NotFoundError):
    """No schedule has this name."""


class BackupNotFoundError(NotFoundError):
    """No backup has this id."""


class ConflictError(ConveyorError):
    """The current state does not allow the operation (HTTP 409): retrying it as is cannot help."""


class KeyInFlightError(ConflictError):
    """Another request holding the same idempotency key has not finished yet."""


class InvalidInputError(ConveyorError, ValueError):
    """Input that cannot be used (HTTP 422); ``errors`` maps the fields at fault to messages."""

    def __init__(self, message: str, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.errors = errors or {}


class InvalidJobError(InvalidInputError):
    """A submission or a corrected payload does not fit its job type."""

    def __init__(self, errors: dict[str, Any], message: str = "The job is not valid."):
        super().__init__(message, errors)


class InvalidScopeError(InvalidInputError):
    """A token was asked for with scopes that do not exist."""


class KeyReusedError(InvalidInputError):
    """An idempotency key came back with another request body."""


class SettingsError(InvalidInputError):
    """A ``CONVEYOR_*`` variable has a value that cannot be used."""


class TooLargeError(ConveyorError):
    """A body past its size limit (HTTP 413); nothing of it was kept."""


class TargetUnavailableError(ConveyorError):
    """A database an import loads into did not answer (HTTP 503; a job retries)."""


class ImportProfileNotFoundError(NotFoundError):
    pass


class PublishRefusedError(ConveyorError):
    """RabbitMQ answered a publish with a negative confirm (a full queue, an internal error)."""
