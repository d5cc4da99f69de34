"""Scheduled maintenance run by beat; plain Celery tasks, not jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from jobs import dead_letters
from jobs.models import IdempotencyKey, utcnow
from jobs.settings import Settings

log = logging.getLogger(__name__)


def purge_expired_idempotency_keys(settings: Settings, sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        deleted = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < utcnow()))
    count: int = deleted.rowcount  # type: ignore[attr-defined]
    log.info("Purged %d expired idempotency keys.", count)
    return count


def purge_expired_dead_letters(settings: Settings, sessions: sessionmaker[Session]) -> int:
    retention = timedelta(days=settings.dead_letter_retention_days)
    with sessions.begin() as session:
        count = dead_letters.purge_expired(session, retention, actor="beat")
    log.info("Purged %d dead letters older than %d days.", count, retention.days)
    return count


MAINTENANCE_TASKS: dict[str, Callable[[Settings, sessionmaker[Session]], Any]] = {
    "conveyor.maintenance.purge_expired_idempotency_keys": purge_expired_idempotency_keys,
    "conveyor.maintenance.purge_expired_dead_letters": purge_expired_dead_letters,
}
