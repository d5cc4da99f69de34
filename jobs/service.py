"""The only module that changes a job's state. The API, the CLI and the workers all call it.

Every function takes an open session and leaves committing to the caller, so that a state change
and its outbox message are written in one transaction.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from jobs import messages
from jobs.broker.queues import QUEUES
from jobs.catalogue import JOB_TYPES, validate_payload
from jobs.db import HotStatement, is_postgresql
from jobs.errors import ConflictError, InvalidJobError, JobNotFoundError
from jobs.models import FINISHED_STATES, Job, JobState, OutboxMessage, utcnow
from jobs.settings import Settings

log = logging.getLogger(__name__)

JOBS = cast(Table, Job.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)
RETRYABLE_BY_HAND = frozenset({JobState.FAILED, JobState.DEAD, JobState.CANCELLED})
CLAIMABLE = frozenset({JobState.QUEUED, JobState.RETRYING, JobState.RUNNING})


@dataclass(frozen=True)
class Submission:
    type: str
    payload: dict[str, Any]
    queue: str | None = None
    priority: int = 0
    run_at: datetime | None = None
    max_attempts: int | None = None
    correlation_id: str | None = None
    causation_id: str | None = None


# A submission's two rows, built once. On PostgreSQL one statement writes both (the job insert
# is a CTE the outbox insert reads), which spares a round trip per submission; SQLite runs two.
# ``result`` is left out: a None bound to a JSON column is stored as JSON null, not SQL NULL.
_JOB_VALUES: dict[str, Any] = {
    column.name: bindparam(f"p_{column.name}") for column in JOBS.c if column.name != "result"
}
_INSERT_JOB = insert(JOBS).values(_JOB_VALUES)
_NEW_JOB = _INSERT_JOB.returning(JOBS.c.id, JOBS.c.dispatch, JOBS.c.queued_at).cte("new_job")
_INSERT_JOB_AND_OUTBOX = insert(OUTBOX).from_select(
    ["job_id", "dispatch", "available_at"], select(_NEW_JOB.c.id, _NEW_JOB.c.dispatch, _NEW_JOB.c.queued_at)
)
_INSERT_OUTBOX = insert(OUTBOX).values(
    job_id=bindparam("p_id"), dispatch=bindparam("p_dispatch"), available_at=bindparam("p_queued_at")
)


def submit(db: Session | Connection, settings: Settings, submission: Submission) -> Job:
    """Record a queued job and its outbox message; the relay publishes it after commit.

    Core inserts rather than the ORM's unit of work, which cost more than all the rest of a
    submission; the job returned is not attached to the session.
    """
    payload = validate_payload(submission.type, submission.payload)
    queue = submission.queue or JOB_TYPES[submission.type].queue
    if queue not in QUEUES:
        raise InvalidJobError({"queue": [f"Unknown queue {queue!r}; one of {', '.join(QUEUES)}."]})
    now = utcnow()
    values: dict[str, Any] = dict.fromkeys(_JOB_VALUES)
    values.update(
        id=uuid.uuid4(),
        type=submission.type,
        queue=queue,
        priority=submission.priority,
        payload=payload,
        state=JobState.QUEUED,
        attempts=0,
        max_attempts=submission.max_attempts or settings.default_max_attempts,
        dispatch=1,
        deliveries=0,
        cancel_requested=False,
        progress=0,
        run_at=submission.run_at,
        correlation_id=submission.correlation_id,
        causation_id=submission.causation_id,
        created_at=now,
        queued_at=submission.run_at or now,
    )
    parameters = {f"p_{name}": value for name, value in values.items()}
    if is_postgresql(db):
        db.execute(_INSERT_JOB_AND_OUTBOX, parameters)
    else:
        db.execute(_INSERT_JOB, parameters)
        db.execute(_INSERT_OUTBOX, parameters)
    return Job(**values)


def _enqueue(session: Session, job: Job, available_at: datetime | None = None) -> None:
    job.queued_at = available_at or utcnow()
    parameters = {"p_id": job.id, "p_dispatch": job.dispatch, "p_queued_at": job.queued_at}
    session.execute(_INSERT_OUTBOX, parameters)  # flushes the job's changes first


def is_unpublished(session: Session, job_id: uuid.UUID) -> bool:
    """Whether the job's message is still waiting in the outbox for the relay."""
    waiting = select(OutboxMessage.id).where(OutboxMessage.job_id == job_id)
    return session.scalar(waiting.limit(1)) is not None


def get(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=for_update)
    if job is None:
        raise JobNotFoundError(f"No job with id {job_id}.")
    return job


def list_jobs(
    session: Session,
    limit: int,
    *,
    type: str | None = None,
    state: str | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Job]:
    """Newest first; ``before`` is the (created_at, id) of the last job of the previous page."""
    statement = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if type is not None:
        statement = statement.where(Job.type == type)
    if state is not None:
        statement = statement.where(Job.state == state)
    if before is not None:
        statement = statement.where(tuple_(Job.created_at, Job.id) < before)
    return list(session.scalars(statement))


@dataclass(frozen=True)
class Claim:
    """What a worker needs from the job row it claimed."""

    payload: dict[str, Any]
    attempts: int
    deliveries: int
    max_attempts: int
    first_failed_at: datetime | None
    state: str
    error_type: str | None
    error_message: str | None

    @classmethod
    def of(cls, row: Any) -> Claim:
        return cls(*(getattr(row, field.name) for field in fields(cls)))


# The two statements every job runs, built once: building them per call cost more CPU than
# running them. Parameter names must not be column names, or SQLAlchemy adds them to the SET.
_CLAIM = HotStatement(
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("p_id"),
        JOBS.c.dispatch == bindparam("p_dispatch"),
        # Not ``in_``: its expanding parameter re-renders the SQL on every execution.
        or_(*(JOBS.c.state == state for state in sorted(CLAIMABLE))),
        JOBS.c.cancel_requested.is_(False),
        JOBS.c.deliveries < bindparam("p_delivery_limit"),
    )
    .values(
        state=JobState.RUNNING,
        attempts=JOBS.c.attempts + 1,
        deliveries=JOBS.c.deliveries + 1,
        started_at=bindparam("p_now"),
        next_retry_at=None,
        worker=bindparam("p_worker"),
        lease_expires_at=bindparam("p_lease"),
    )
    .returning(*(JOBS.c[field.name] for field in fields(Claim)))
)
_SUCCEED = HotStatement(
    update(JOBS)
    .where(JOBS.c.id == bindparam("p_id"), JOBS.c.state == JobState.RUNNING)
    .values(
        state=JobState.SUCCEEDED,
        result=bindparam("p_result"),
        error_type=None,
        error_message=None,
        progress=100,
        finished_at=bindparam("p_now"),
        next_retry_at=None,
        lease_expires_at=None,
    ),
    json=("p_result",),
)


@dataclass(frozen=True)
class Delivery:
    """A worker's copy of a job's message, and the terms on which it may claim the job."""

    job_id: uuid.UUID
    dispatch: int
    worker: str
    delivery_limit: int
    lease: timedelta


def mark_started(db: Session | Connection, delivery: Delivery) -> Claim | None:
    """Claim the job for this delivery in one statement (``_CLAIM``, atomic on its own); None
    when it matched nothing, and ``settle_claim`` then decides.

    A job still ``running`` is claimed again: its worker died. Deliveries of one attempt are
    counted, and past ``delivery_limit`` the job is not claimed; a retry or a requeue starts the
    count again.
    """
    now = utcnow()
    parameters = {
        "p_id": delivery.job_id,
        "p_dispatch": delivery.dispatch,
        "p_delivery_limit": delivery.delivery_limit,
        "p_now": now,
        "p_worker": delivery.worker,
        "p_lease": now + delivery.lease,
    }
    claimed = _CLAIM.run(db, parameters)
    return Claim.of(claimed) if claimed is not None else None


def settle_claim(session: Session, delivery: Delivery) -> Claim | None:
    """After ``mark_started`` matched nothing, decide with the row locked: a stale message or a
    finished job (None), a cancelled job (marked cancelled, None), one past its delivery limit
    (marked dead and returned, for the caller to dead-letter), or, if it changed meanwhile,
    claimed after all."""
    job = get(session, delivery.job_id, for_update=True)
    if job.dispatch != delivery.dispatch or job.state not in CLAIMABLE:
        log.info(
            "Skipping job %s: dispatch %d is stale or the job is %s.", job.id, delivery.dispatch, job.state
        )
        return None
    if job.cancel_requested:
        _finish(job, JobState.CANCELLED)
        return None
    if job.deliveries < delivery.delivery_limit:
        return mark_started(session, delivery)
    job.deliveries += 1
    died = job.deliveries - 1
    mark_dead(job, "WorkerLostError", f"The job's worker died {died} times while running it.")
    return Claim.of(job)


def lost_jobs(session: Session, limit: int = 100) -> list[Job]:
    """Running jobs past their lease: their worker died and the broker will not redeliver."""
    statement = select(Job).where(Job.state == JobState.RUNNING, Job.lease_expires_at < utcnow())
    return list(session.scalars(statement.limit(limit).with_for_update(skip_locked=True)))


def unclaimed_jobs(session: Session, waited: timedelta, limit: int = 100) -> list[Job]:
    """Published jobs no worker has claimed for ``waited``: their message may have been lost
    (a Redis restart without persistence, a file-system broker whose worker died holding it)."""
    pending = select(OutboxMessage.id).where(OutboxMessage.job_id == Job.id)
    statement = select(Job).where(
        Job.state.in_([JobState.QUEUED, JobState.RETRYING]),
        Job.queued_at < utcnow() - waited,
        ~pending.exists(),
    )
    return list(session.scalars(statement.limit(limit).with_for_update(skip_locked=True)))


def send_again(session: Session, job: Job) -> None:
    """A new dispatch of a waiting job; a late copy of the old message is then skipped as stale."""
    job.dispatch += 1
    _enqueue(session, job)


def recover_lost(session: Session, job: Job, delivery_limit: int) -> JobState:
    """Send a lost job again as a new dispatch (a stale copy is skipped), or give up on it."""
    if job.deliveries >= delivery_limit:
        mark_dead(
            job, "WorkerLostError", f"The job's worker was lost {job.deliveries} times while running it."
        )
        return JobState.DEAD
    job.state = JobState.RETRYING
    job.lease_expires_at = None
    send_again(session, job)
    return JobState.RETRYING


def mark_succeeded(db: Session | Connection, job_id: uuid.UUID, result: Any) -> None:
    """One Core statement (``_SUCCEED``): the hot path of every job."""
    _SUCCEED.run(db, {"p_id": job_id, "p_result": result, "p_now": utcnow()})


def mark_cancelled(session: Session, job: Job) -> None:
    _finish(job, JobState.CANCELLED)


def record_failure(
    session: Session,
    settings: Settings,
    job: Job,
    error: BaseException,
    *,
    retryable: bool,
    delay_ms: int | None = None,
) -> JobState:
    """Retry with backoff while attempts remain, else the job is dead; returns the new state."""
    job.error_type = type(error).__name__
    job.error_message = messages.clip_error(str(error))
    job.first_failed_at = job.first_failed_at or utcnow()
    if not retryable or job.attempts >= job.max_attempts:
        mark_dead(job, job.error_type, job.error_message)
        return JobState.DEAD
    delay = delay_ms if delay_ms is not None else backoff_ms(settings, job.attempts)
    job.state = JobState.RETRYING
    job.dispatch += 1
    job.deliveries = 0
    job.next_retry_at = utcnow() + timedelta(milliseconds=delay)
    _enqueue(session, job, available_at=job.next_retry_at)
    return JobState.RETRYING


def mark_dead(job: Job, error_type: str, error: str) -> None:
    """The job's message is (or is on its way to) a dead-letter queue."""
    job.error_type, job.error_message = error_type, messages.clip_error(error)
    job.first_failed_at = job.first_failed_at or utcnow()
    _finish(job, JobState.DEAD)


def backoff_ms(settings: Settings, attempts: int) -> int:
    """Exponential backoff with jitter: a random delay in [d/2, d], d doubling per attempt."""
    ceiling = min(settings.retry_backoff_max_ms, settings.retry_backoff_ms * 2 ** (attempts - 1))
    return random.randint(ceiling // 2, ceiling)


def cancel(session: Session, job_id: uuid.UUID) -> Job:
    """Cancel a waiting job at once; ask a running one to stop at its next check."""
    job = get(session, job_id, for_update=True)
    if job.state in FINISHED_STATES:
        raise ConflictError(f"Job {job_id} is already {job.state}.")
    if job.state == JobState.RUNNING:
        job.cancel_requested = True
    else:
        _finish(job, JobState.CANCELLED)
        session.execute(delete(OutboxMessage).where(OutboxMessage.job_id == job_id))
    return job


def retry(session: Session, job_id: uuid.UUID) -> Job:
    """Run a failed, dead or cancelled job again from its first attempt."""
    job = get(session, job_id, for_update=True)
    if job.state not in RETRYABLE_BY_HAND:
        raise ConflictError(f"Job {job_id} is {job.state}; only failed, dead or cancelled jobs retry.")
    requeue(session, job)
    return job


def requeue(session: Session, job: Job) -> None:
    """Queue the job again as a new dispatch whose attempts start from zero."""
    if job.state not in RETRYABLE_BY_HAND:
        raise ConflictError(f"Job {job.id} is {job.state}; only failed, dead or cancelled jobs requeue.")
    job.state = JobState.QUEUED
    job.attempts = job.deliveries = 0
    job.dispatch += 1
    job.cancel_requested = False
    job.result = job.error_type = job.error_message = None
    job.started_at = job.finished_at = job.next_retry_at = job.first_failed_at = None
    job.lease_expires_at = job.requeued_from = None
    job.progress, job.progress_message = 0, None
    _enqueue(session, job)


def report_progress(session: Session, job_id: uuid.UUID, percent: int, message: str | None) -> bool:
    """Record progress; returns whether cancellation was asked for, for cooperative tasks."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING)
        .values(progress=max(0, min(100, percent)), progress_message=(message or "")[:200] or None)
    )
    return is_cancel_requested(session, job_id)


def is_cancel_requested(session: Session, job_id: uuid.UUID) -> bool:
    job = session.get(Job, job_id, populate_existing=True)
    return bool(job and job.cancel_requested)


def _finish(job: Job, state: JobState) -> None:
    job.state = state
    job.finished_at = utcnow()
    job.next_retry_at = job.lease_expires_at = None
