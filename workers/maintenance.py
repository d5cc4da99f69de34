"""Scheduled maintenance that beat sends (see ``schedules/beat.py``): plain Celery tasks, not jobs.

Each is a core function run in its own transaction, with a log line saying what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from jobs import dead_letters, idempotency
from jobs.db import Database

log = logging.getLogger(__name__)


def purge_expired_idempotency_keys(db: Database) -> int:
    with db.sessions.begin() as session:
        count = idempotency.purge_expired(session)
    log.info("Purged %d expired idempotency keys.", count)
    return count


def purge_expired_dead_letters(db: Database) -> int:
    retention = timedelta(days=db.settings.dead_letter_retention_days)
    with db.sessions.begin() as session:
        count = dead_letters.purge_expired(session, retention, actor="beat")
    log.info("Purged %d dead letters older than %d days.", count, retention.days)
    return count


MAINTENANCE_TASKS: dict[str, Callable[[Database], int]] = {
    "conveyor.maintenance.purge_expired_idempotency_keys": purge_expired_idempotency_keys,
    "conveyor.maintenance.purge_expired_dead_letters": purge_expired_dead_letters,
}
