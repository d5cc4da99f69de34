"""Backups of PostgreSQL databases: dump, verify, restore, drill. The work is the platform's
(``jobs.upkeep``); a handler classifies its failures for the worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobs.storage import StorageError, StorageFullError
from jobs.upkeep import UpkeepError, backups, drills
from tasks.context import JobContext
from tasks.errors import PermanentError, RetryableError


@contextmanager
def classified() -> Iterator[None]:
    """UpkeepError and StorageError say whether they may pass. A full disk is permanent here,
    unlike for other jobs: the same dump would fill it again, and the job would retry a
    multi-gigabyte dump for nothing."""
    try:
        yield
    except StorageFullError as exc:
        raise PermanentError(f"{exc} The backup storage is full; free space before the next backup.") from exc
    except (UpkeepError, StorageError) as exc:
        raise (RetryableError if exc.retriable else PermanentError)(str(exc)) from exc


def backup_database(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    with classified():
        return backups.take_backup(ctx.settings, ctx.sessions, payload["target"], ctx.job_id, ctx.progress)


def verify_backup(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    with classified():
        return backups.verify_again(ctx.settings, ctx.sessions, payload["backup_id"], ctx.progress)


def restore_backup(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    with classified():
        return backups.restore_into(
            ctx.settings, ctx.sessions, payload["backup_id"], payload["into"], ctx.progress
        )


def drill_restore(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    with classified():
        return drills.drill(ctx.settings, ctx.sessions, payload["target"], ctx.job_id, ctx.progress)
