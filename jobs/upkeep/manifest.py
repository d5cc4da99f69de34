"""The backup manifest and the drills' record: what the backup jobs write, and what the API and
the CLI list. A backup counts (restores and drills use it) only once ``verified``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.db import newest_first
from jobs.errors import BackupNotFoundError
from jobs.models import Backup, RestoreDrill, utcnow

BACKUP_COLUMNS = tuple(column.key for column in Backup.__table__.columns)
DRILL_COLUMNS = tuple(column.key for column in RestoreDrill.__table__.columns)


def record_backup(session: Session, **columns: Any) -> Backup:
    backup = Backup(**columns)
    session.add(backup)
    return backup


def get_backup(session: Session, backup_id: uuid.UUID | str) -> Backup:
    found = session.get(Backup, uuid.UUID(str(backup_id)))
    if found is None:
        raise BackupNotFoundError(f"No backup with id {backup_id}.")
    return found


def list_backups(
    session: Session,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
    target: str | None = None,
) -> list[Backup]:
    """Newest first by (started_at, id); ``before`` is the last row of the previous page."""
    query = select(Backup) if target is None else select(Backup).where(Backup.target == target)
    return list(session.scalars(newest_first(query, Backup.started_at, Backup.id, before).limit(limit)))


def newest_verified(session: Session, target: str) -> Backup | None:
    query = select(Backup).where(Backup.target == target, Backup.verified.is_(True))
    return session.scalars(newest_first(query, Backup.started_at, Backup.id, None).limit(1)).first()


def backups_of(session: Session, target: str) -> list[Backup]:
    """Every backup of ``target``, newest first: what retention chooses from."""
    query = select(Backup).where(Backup.target == target)
    return list(session.scalars(newest_first(query, Backup.started_at, Backup.id, None)))


def record_verification(session: Session, backup_id: uuid.UUID, error: str | None) -> Backup:
    """A verification's outcome: ``error`` None means it passed and the backup counts."""
    backup = get_backup(session, backup_id)
    backup.verified, backup.verify_error = error is None, error
    backup.verified_at = utcnow() if error is None else None
    return backup


def forget_backups(session: Session, backup_ids: Sequence[uuid.UUID]) -> None:
    for backup_id in backup_ids:
        found = session.get(Backup, backup_id)
        if found is not None:
            session.delete(found)


def record_drill(session: Session, **columns: Any) -> RestoreDrill:
    drill = RestoreDrill(**columns)
    session.add(drill)
    return drill


def list_drills(
    session: Session, limit: int, before: tuple[datetime, uuid.UUID] | None = None
) -> list[RestoreDrill]:
    query = newest_first(select(RestoreDrill), RestoreDrill.started_at, RestoreDrill.id, before)
    return list(session.scalars(query.limit(limit)))


def backup_view(backup: Backup) -> dict[str, Any]:
    """Every column, JSON-able (ids as text, times in ISO 8601), and ``counts``: whether the
    backup is one a restore or a drill may use."""
    return {**_plain(backup, BACKUP_COLUMNS), "counts": backup.verified}


def drill_view(drill: RestoreDrill) -> dict[str, Any]:
    return _plain(drill, DRILL_COLUMNS)


def _plain(row: Any, columns: Sequence[str]) -> dict[str, Any]:
    return {name: _json(getattr(row, name)) for name in columns}


def _json(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
