"""A worker's claim on a job, and its success: the two statements every job runs.

A delivery claims the job only while its dispatch is current and the job is waiting, or running
under a lease that lapsed: the job row, not a broker timer, decides who runs a job. A claim takes
a short lease that the worker renews while the handler runs (``renew_lease``); a delivery of a job
whose lease is live is skipped, and the relay sends a job whose lease lapsed again. Whatever a
claim does not match is settled with the row locked.

Each claim writes a new ``claim_token``, and every write that follows it (success, failure,
cancellation, progress, lease renewal) names that token: a write from a claim another delivery
has since replaced changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, and_, bindparam, or_, update
from sqlalchemy.orm import Session

from jobs.db import HotStatement
from jobs.models import Job, JobState, utcnow
from jobs.service.queries import get
from jobs.service.submission import JOBS
from jobs.service.transitions import CLAIMABLE, finish, mark_dead

log = logging.getLogger(__name__)


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
    claim_token: str | None
    parent_id: uuid.UUID | None
    correlation_id: str | None
    causation_id: str | None

    @property
    def token(self) -> str:
        """The claim token the job's writes are fenced with ("" for none)."""
        return self.claim_token or ""

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
        or_(
            JOBS.c.state == JobState.QUEUED,
            JOBS.c.state == JobState.RETRYING,
            and_(JOBS.c.state == JobState.RUNNING, JOBS.c.lease_expires_at < bindparam("p_lapsed")),
        ),
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
        claim_token=bindparam("p_token"),
    )
    .returning(*(JOBS.c[field.name] for field in fields(Claim)))
)
_SUCCEED = HotStatement(
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("p_id"),
        JOBS.c.state == JobState.RUNNING,
        JOBS.c.claim_token == bindparam("p_token"),
    )
    .values(
        state=JobState.SUCCEEDED,
        result=bindparam("p_result"),
        error_type=None,
        error_message=None,
        progress=100,
        finished_at=bindparam("p_now"),
        next_retry_at=None,
        lease_expires_at=None,
    )
    .returning(JOBS.c.id),
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
        "p_lapsed": now - lapse_grace(delivery.lease),
        "p_token": uuid.uuid4().hex,
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
    if holds_live_lease(job, lapse_grace(delivery.lease)):
        log.info("Skipping job %s: %s holds it until %s.", job.id, job.worker, job.lease_expires_at)
        return None
    if job.cancel_requested:
        finish(job, JobState.CANCELLED)
        return None
    if job.deliveries < delivery.delivery_limit:
        return mark_started(session, delivery)
    job.deliveries += 1
    died = job.deliveries - 1
    mark_dead(job, "WorkerLostError", f"The job's worker died {died} times while running it.")
    return Claim.of(job)


def lapse_grace(lease: timedelta) -> timedelta:
    """How long past its end a lease still counts: longer than a renewal interval, so that after
    a database outage longer than a lease a healthy worker renews before anyone takes over."""
    return lease / 2


def holds_live_lease(job: Job, grace: timedelta = timedelta(0)) -> bool:
    """A running job whose worker renewed its lease in time: still in good hands."""
    lease = job.lease_expires_at
    return job.state == JobState.RUNNING and lease is not None and lease + grace >= utcnow()


RELEASED = timedelta(days=1)  # far enough past for any lease and its grace
_RENEW = update(JOBS).where(
    JOBS.c.id == bindparam("p_id"),
    JOBS.c.state == JobState.RUNNING,
    JOBS.c.claim_token == bindparam("p_token"),
)


def renew_lease(db: Session | Connection, job_id: uuid.UUID, token: str, lease: timedelta) -> bool | None:
    """Extend the claim's lease; returns whether cancellation was asked for, or None when the
    claim is no longer the job's (the handler should stop: its outcome would be ignored)."""
    renewed = db.execute(
        _RENEW.values(lease_expires_at=utcnow() + lease).returning(JOBS.c.cancel_requested),
        {"p_id": job_id, "p_token": token},
    ).first()
    return None if renewed is None else bool(renewed.cancel_requested)


def release_lease(session: Session, job_id: uuid.UUID, dispatch: int, worker: str) -> bool:
    """Let the lease of a claim lapse now: its worker saw the process holding it die, so the
    redelivery the broker makes can claim the job at once instead of waiting out the lease."""
    released = session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.dispatch == dispatch)
        .where(JOBS.c.state == JobState.RUNNING, JOBS.c.worker == worker)
        .values(lease_expires_at=utcnow() - RELEASED)
    )
    return bool(cast(CursorResult[Any], released).rowcount)


def mark_succeeded(db: Session | Connection, job_id: uuid.UUID, token: str, result: Any) -> bool:
    """One Core statement (``_SUCCEED``), the hot path of every job; False, and nothing written,
    when the claim ``token`` names is no longer the job's."""
    succeeded = _SUCCEED.run(db, {"p_id": job_id, "p_token": token, "p_result": result, "p_now": utcnow()})
    if succeeded is None:
        log.info("Ignoring the success of job %s: its claim is no longer current.", job_id)
    return succeeded is not None
