"""Publishing: outbox rows become broker messages, exactly one publish per row.

The API publishes its own row right after commit (the fast path); the relay publishes whatever is
left: rows whose fast path failed (broker down, crash) and delayed rows (retries, ``run_at``).
Both claim rows the same way, by deleting them in the transaction that publishes them, so a row is
published once unless the process dies between the publish and the commit; the worker then sees
a stale dispatch or a finished job and skips the copy.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable

from celery import Celery
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from jobs.broker import celery_config
from jobs.models import Job, OutboxMessage, utcnow
from jobs.settings import Settings
from jobs.types import JOB_TYPES

log = logging.getLogger(__name__)


class Publisher:
    """Sends job messages: the job id and its dispatch number, never the payload."""

    def __init__(self, settings: Settings):
        self.celery = Celery("conveyor-publisher", set_as_current=False)
        self.celery.config_from_object(celery_config(settings))

    def publish(self, job: Job, dispatch: int) -> None:
        self.celery.send_task(
            JOB_TYPES[job.type].task_name,
            args=[str(job.id), dispatch],
            task_id=f"{job.id}.{dispatch}",
            queue=job.queue,
            priority=job.priority,
            retry=False,
        )

    def ping(self) -> None:
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        self.celery.close()


def publish_due(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    *,
    job_ids: Iterable[uuid.UUID] | None = None,
    limit: int = 200,
) -> int:
    """Claim due outbox rows, publish them, and commit; returns how many were published.

    A publish error rolls the claim back, leaving the rows for the next try.
    """
    with sessions.begin() as session:
        due = (
            select(OutboxMessage.id)
            .where(OutboxMessage.available_at <= utcnow())
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if job_ids is not None:
            due = due.where(OutboxMessage.job_id.in_(list(job_ids)))
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        claimed = session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.id.in_(due.scalar_subquery()))
            .returning(OutboxMessage.job_id, OutboxMessage.dispatch)
        ).all()
        if not claimed:
            return 0
        jobs = {
            job.id: job for job in session.scalars(select(Job).where(Job.id.in_([c[0] for c in claimed])))
        }
        for job_id, dispatch in claimed:
            publisher.publish(jobs[job_id], dispatch)
    return len(claimed)


def run_relay(settings: Settings, sessions: sessionmaker[Session], stop: threading.Event) -> None:
    """Publish due outbox rows until ``stop`` is set; survives broker and database outages."""
    publisher = Publisher(settings)
    interval = settings.relay_interval_ms / 1000
    failing = False
    log.info("Outbox relay started; polling every %d ms.", settings.relay_interval_ms)
    while not stop.is_set():
        try:
            published = publish_due(sessions, publisher)
        except Exception as exc:
            if not failing:
                log.warning("Outbox relay cannot publish yet (%s); will keep trying.", exc)
            failing = True
            stop.wait(min(5.0, interval * 10))
            continue
        if failing:
            log.info("Outbox relay is publishing again.")
            failing = False
        if published:
            log.debug("Outbox relay published %d messages.", published)
        else:
            stop.wait(interval)
    publisher.close()
