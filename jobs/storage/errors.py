"""Storage failures, classified once: each kind says whether trying again can help."""

from __future__ import annotations

from jobs.errors import ConveyorError, NotFoundError


class StorageError(ConveyorError):
    """A storage backend failed; the message names the URL. ``retriable`` says whether the same
    call may succeed later (throttling, a 5xx, a reset connection) or cannot (a refusal)."""

    retriable = False


class ObjectMissingError(StorageError, NotFoundError):
    """No object, or no bucket, at the URL."""


class StorageRefusedError(StorageError):
    """The backend refused the call: access denied, a bad bucket name, a key it cannot hold."""


class StorageUnavailableError(StorageError):
    """The backend could not answer now: throttled, a server error, a dropped connection."""

    retriable = True


class StorageFullError(StorageUnavailableError):
    """The disk or quota is full. Retriable like any passing fault, for a job that frees space
    or waits for it (the offsite sync); a backup treats it as permanent, since its own dump
    would only fill the disk again."""
