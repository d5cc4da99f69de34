"""Driving the job state machine by hand, as workers and operators would, without a worker."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from jobs import service
from jobs.db import Database
from jobs.models import Job, JobState, OutboxMessage, utcnow

LIMIT = 5  # deliveries of one attempt a test delivery accepts


def claim(
    db: Database, job_id: uuid.UUID, dispatch: int = 1, limit: int = LIMIT, *, settle: bool = False
) -> service.Claim | None:
    """A worker's delivery: ``mark_started``, or with ``settle`` the ``settle_claim`` that follows it."""
    message = service.Delivery(job_id, dispatch, "w1", limit, timedelta(seconds=60))
    with db.sessions.begin() as session:
        return service.settle_claim(session, message) if settle else service.mark_started(session, message)


def submitted(db: Database, **options: Any) -> uuid.UUID:
    with db.sessions.begin() as session:
        return service.submit(session, db.settings, service.Submission("echo", {}, **options)).id


def running(db: Database, **options: Any) -> uuid.UUID:
    job_id = submitted(db, **options)
    assert claim(db, job_id) is not None
    return job_id


def token_of(db: Database, job_id: uuid.UUID) -> str:
    """The job's current claim, as the worker holding it knows it."""
    return load(db, job_id).claim_token or ""


def fail(
    db: Database, job_id: uuid.UUID, *, retryable: bool = True, token: str | None = None
) -> JobState | None:
    """A worker's failure under ``token`` (default: the job's current claim)."""
    token = token_of(db, job_id) if token is None else token
    with db.sessions.begin() as session:
        job = service.get(session, job_id, for_update=True)
        error = RuntimeError("x")
        return service.record_failure(session, db.settings, job, error, token=token, retryable=retryable)


def succeed(db: Database, job_id: uuid.UUID, token: str | None = None) -> bool:
    """A worker's success under ``token`` (default: the job's current claim)."""
    token = token_of(db, job_id) if token is None else token
    with db.sessions.begin() as session:
        return service.mark_succeeded(session, job_id, token, {"ok": True})


def cancel(db: Database, job_id: uuid.UUID) -> Job:
    with db.sessions.begin() as session:
        return service.cancel(session, job_id, actor="test")


def load(db: Database, job_id: uuid.UUID) -> Job:
    with db.sessions() as session:
        return service.get(session, job_id)


def row(db: Database, job_id: uuid.UUID) -> dict[str, Any]:
    job = load(db, job_id)
    return {column.name: getattr(job, column.name) for column in Job.__table__.columns}


def outbox(db: Database, job_id: uuid.UUID) -> list[int]:
    """The dispatches of the job's outbox rows, oldest first."""
    with db.sessions() as session:
        query = select(OutboxMessage.dispatch).where(OutboxMessage.job_id == job_id)
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def in_state(db: Database, state: str) -> uuid.UUID:
    """A job driven to ``state`` by the service's own functions."""
    job_id = submitted(db) if state in (JobState.QUEUED, JobState.CANCELLED) else running(db)
    if state == JobState.CANCELLED:
        cancel(db, job_id)
    if state in (JobState.RETRYING, JobState.DEAD):
        fail(db, job_id, retryable=state == JobState.RETRYING)
    if state == JobState.SUCCEEDED:
        succeed(db, job_id)
    assert load(db, job_id).state == state
    return job_id


def transaction(db: Database, via: str) -> AbstractContextManager[Session | Connection]:
    """A transaction on a session, or on a bare connection as the workers' hot path uses."""
    return db.sessions.begin() if via == "session" else db.engine.begin()


def lapse(db: Database, job_id: uuid.UUID) -> None:
    """The lease of the job's claim ran out long ago, past any grace: its worker died."""
    with db.sessions.begin() as session:
        service.get(session, job_id, for_update=True).lease_expires_at = utcnow() - timedelta(hours=1)
