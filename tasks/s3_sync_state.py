"""What an ``s3-sync`` run keeps while it goes: its plan, its tally, its progress and its filter."""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass, field

from jobs.storage import ObjectInfo, StorageError
from tasks.context import JobContext

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0
MAX_LISTED = 100


@dataclass
class Plan:
    """What the listings call for: the source's objects to copy, or to compare by checksum
    first, and the destination's keys the source lacks."""

    copies: list[ObjectInfo] = field(default_factory=list)
    checks: list[tuple[ObjectInfo, ObjectInfo]] = field(default_factory=list)
    extraneous: list[str] = field(default_factory=list)
    listed: int = 0
    skipped: int = 0


@dataclass
class Tally:
    copied: int = 0
    deleted: int = 0
    bytes: int = 0
    vanished: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    retriable: bool = False

    def failed(self, key: str, exc: BaseException) -> None:
        """Count a failed object. A storage error says whether it may pass; anything else is
        unexpected, logged with its traceback and retried."""
        self.error_count += 1
        self.retriable = self.retriable or not isinstance(exc, StorageError) or exc.retriable
        if len(self.errors) < MAX_LISTED:
            self.errors.append(f"{key}: {exc}")
            if not isinstance(exc, StorageError):
                log.error("Syncing %s raised an unexpected error.", key, exc_info=exc)


class Moving:
    """Bytes moved so far, added to from the transfers' threads."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lock = threading.Lock()

    def add(self, count: int) -> None:
        with self.lock:
            self.bytes += count


class Progress:
    """The job's progress, written at most once a second; a cancelled job raises here."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.last = 0.0

    def tick(self, percent: int, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.ctx.progress(percent, message)

    def finish(self) -> None:
        """The last word: the work is done, so a cancel asked for now comes too late to stop it."""
        self.ctx.report(100, "done")


class Filter:
    """``include`` and ``exclude`` globs (``*`` matches across ``/``) on keys under the root."""

    def __init__(self, include: list[str], exclude: list[str]):
        self.include, self.exclude = include, exclude

    def __call__(self, key: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(key, glob) for glob in self.include):
            return False
        return not any(fnmatch.fnmatchcase(key, glob) for glob in self.exclude)
