"""Publishing: outbox rows become broker messages, exactly one publish per row.

Whoever changes a job's state writes its outbox row in the same transaction (``jobs.service``);
only the relay publishes. It claims rows by deleting them in the transaction that publishes them,
so a row is published once unless the process dies between the publish and the commit; the
worker then sees a stale dispatch or a finished job and skips the copy. On PostgreSQL a trigger
(migration 0003) notifies the relay of every outbox insert, so it publishes within milliseconds
and in batches under load; on SQLite it polls every ``CONVEYOR_RELAY_INTERVAL_MS``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from jobs import dead_letters
from jobs.broker.queues import QUEUES
from jobs.catalogue import JOB_TYPES
from jobs.db import is_postgresql
from jobs.models import Job, OutboxMessage, utcnow
from jobs.observability.liveness import Liveness
from jobs.relay.loop import Duty, run_until
from jobs.relay.publisher import Publisher
from jobs.relay.recovery import Sweeper, failure_of_job
from jobs.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# Under load, passes closer together than this publish a handful of rows each and cost a
# transaction and a confirm wait apiece; a job submitted to an idle relay is not delayed by it.
MIN_PASS_GAP_S = 0.05
LATE_PUBLISH = timedelta(seconds=5)


def publish_due(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    *,
    job_ids: Iterable[uuid.UUID] | None = None,
    limit: int = BATCH_SIZE,
) -> int:
    """Claim due outbox rows, publish them, and commit; returns how many were published.

    A publish error rolls the claim back, leaving the rows for the next try.
    """
    with sessions.begin() as session:
        _commit_without_flush_wait(session)
        claimed = _claim_due(session, job_ids, limit)
        routes = _routes(session, [job_id for job_id, _, _, _ in claimed if job_id is not None])
        set_aside: list[tuple[uuid.UUID, int, str]] = []
        with publisher.batch():
            for job_id, dispatch, raw, _ in claimed:
                if job_id is None:
                    if raw is not None:
                        publisher.publish_raw(raw)
                elif (problem := unroutable(routes[job_id])) is not None:
                    set_aside.append((job_id, dispatch, problem))
                else:
                    job = routes[job_id]
                    task_name = JOB_TYPES[job.type].task_name
                    publisher.publish(job_id, task_name, job.queue, job.priority, dispatch)
        for job_id, dispatch, problem in set_aside:
            dead_letter_unsent(session, job_id, dispatch, problem)
        _restamp_late(session, claimed)
    return len(claimed)


def _restamp_late(session: Session, claimed: list[Any]) -> None:
    """A job published long after its row was due (the broker was down) counts as queued from
    now: else the sweep would take it for lost and send it again at once. Rows published on time,
    nearly all of them, cost nothing here."""
    late_before = utcnow() - LATE_PUBLISH
    late = [job_id for job_id, _, _, due in claimed if job_id is not None and due < late_before]
    if late:
        session.execute(update(Job).where(Job.id.in_(late)).values(queued_at=utcnow()))


def _claim_due(session: Session, job_ids: Iterable[uuid.UUID] | None, limit: int) -> list[Any]:
    """Delete the due rows and return them: the claim commits with the publish, or rolls back."""
    due = select(OutboxMessage.id).where(OutboxMessage.available_at <= utcnow()).order_by(OutboxMessage.id)
    if job_ids is not None:
        due = due.where(OutboxMessage.job_id.in_(list(job_ids)))
    if is_postgresql(session):
        due = due.with_for_update(skip_locked=True)
    claimed = session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.id.in_(due.limit(limit).scalar_subquery()))
        .returning(
            OutboxMessage.job_id, OutboxMessage.dispatch, OutboxMessage.raw, OutboxMessage.available_at
        )
    )
    return list(claimed.all())


def _routes(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    routes = select(Job.id, Job.type, Job.queue, Job.priority).where(Job.id.in_(ids))
    return {row.id: row for row in session.execute(routes)} if ids else {}


def unroutable(job: Any) -> str | None:
    """Why the job's message cannot be sent (a release retired its type or its queue), or None."""
    if job.type not in JOB_TYPES:
        return f"Job type {job.type!r} is not in this release's catalogue."
    if job.queue not in QUEUES:
        return f"Queue {job.queue!r} is not declared in this release."
    return None


def dead_letter_unsent(session: Session, job_id: uuid.UUID, dispatch: int, problem: str) -> None:
    """Set a job the relay cannot send aside as a dead letter, so the rest keep flowing."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.dispatch != dispatch:
        return
    log.error("Job %s cannot be published and is dead-lettered: %s", job_id, problem)
    dead_letters.index(session, failure_of_job(job, "unroutable", "UnroutableJobError", problem))


def _commit_without_flush_wait(session: Session) -> None:
    """A claim lost in a database crash only publishes its message once more, which workers
    tolerate (see the module docstring), so its commit need not wait for the disk."""
    if is_postgresql(session):
        session.execute(text("SET LOCAL synchronous_commit = off"))


class Wakeup:
    """The relay's pause between passes, cut short on PostgreSQL by the outbox trigger's notice."""

    CHANNEL = "conveyor_outbox"

    def __init__(self, engine: Engine, stop: threading.Event):
        self.engine = engine
        self.stop = stop
        self.listener: Any = None

    def wait(self, timeout: float, last_pass: float) -> None:
        """Until a notice or ``timeout``, but no sooner than ``MIN_PASS_GAP_S`` after ``last_pass``."""
        if self.engine.dialect.name != "postgresql":
            self.stop.wait(timeout)
            return
        try:
            listener = self._listener()
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                pass
            self.stop.wait(max(0.0, last_pass + MIN_PASS_GAP_S - time.monotonic()))
            for _ in listener.notifies(timeout=0):
                pass  # notices that came meanwhile: the next pass publishes their rows too
        except Exception as exc:
            if self.listener is not None:
                log.warning("Relay stopped listening for outbox notices (%s); polling instead.", exc)
            self.close()
            self.stop.wait(timeout)

    def _listener(self) -> Any:
        if self.listener is None:
            connection = self.engine.raw_connection()
            connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            connection.driver_connection.execute(f"LISTEN {self.CHANNEL}")  # type: ignore[union-attr]
            self.listener = connection
        return self.listener.driver_connection

    def close(self) -> None:
        if self.listener is not None:
            self.listener.invalidate()
            self.listener = None


def run_relay(settings: Settings, sessions: sessionmaker[Session], stop: threading.Event) -> None:
    """Publish due outbox rows, and sweep for lost jobs, until ``stop`` is set."""
    publisher = Publisher(settings)
    wakeup = Wakeup(sessions.kw["bind"], stop)
    sweeper = Sweeper(settings, sessions)
    interval = settings.relay_interval_ms / 1000
    alive = Liveness(settings, "relay", sessions)
    # A whole batch submission in one claim and one confirm round.
    batch = max(BATCH_SIZE, settings.max_batch)

    def step() -> None:
        alive.touch()
        sweeper.sweep_when_due()
        passed = time.monotonic()
        published = publish_due(sessions, publisher, limit=batch)
        if published:
            log.debug("Outbox relay published %d messages.", published)
        if published < batch:
            wakeup.wait(interval, passed)

    log.info(
        "Outbox relay started; it looks for due messages at least every %d ms.", settings.relay_interval_ms
    )
    run_until(stop, Duty("Outbox relay", ("publish", "publishing"), step, interval))
    wakeup.close()
    publisher.close()
