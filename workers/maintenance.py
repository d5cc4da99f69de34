"""Scheduled maintenance that beat sends (see ``schedules/beat.py``): plain Celery tasks, not jobs.

Each is a core function run in its own transaction, with a log line saying what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from jobs import dead_letters, idempotency, service
from jobs.db import Database

log = logging.getLogger(__name__)
OFFSITE_SYNC = "offsite-sync"  # the correlation id of the nightly offsite sync's jobs


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


def submit_offsite_sync(db: Database) -> int:
    """Copy the platform's storage offsite as an ``s3-sync`` job, so the run has a recorded
    outcome, retries and a dead letter if it fails. Nothing is deleted offsite: a file removed
    here by mistake can still be fetched back."""
    settings = db.settings
    payload = {"source": settings.storage_url, "destination": settings.offsite_sync_url}
    with db.sessions.begin() as session:
        running = service.unfinished_job(session, OFFSITE_SYNC)
        if running is not None:
            log.warning(
                "Offsite sync %s has not finished (%s); not starting another.", running.id, running.state
            )
            return 0
        job = service.submit(
            session, settings, service.Submission("s3-sync", payload, correlation_id=OFFSITE_SYNC)
        )
    log.info("Submitted offsite sync %s of %s to %s.", job.id, payload["source"], payload["destination"])
    return 1


MAINTENANCE_TASKS: dict[str, Callable[[Database], int]] = {
    "conveyor.maintenance.purge_expired_idempotency_keys": purge_expired_idempotency_keys,
    "conveyor.maintenance.purge_expired_dead_letters": purge_expired_dead_letters,
    "conveyor.maintenance.submit_offsite_sync": submit_offsite_sync,
}
