"""Reads of the job table, some locking the rows they return for the transition that follows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.db import newest_first
from jobs.errors import JobNotFoundError
from jobs.models import FINISHED_STATES, Job, JobState, OutboxMessage, utcnow


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
    correlation_id: str | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Job]:
    """Newest first; ``before`` is the (created_at, id) of the last job of the previous page."""
    statement = newest_first(select(Job), Job.created_at, Job.id, before).limit(limit)
    wanted = ((Job.type, type), (Job.state, state), (Job.correlation_id, correlation_id))
    for column, value in wanted:
        if value is not None:
            statement = statement.where(column == value)
    return list(session.scalars(statement))


def lost_jobs(session: Session, grace: timedelta, limit: int = 100) -> list[Job]:
    """Running jobs past their lease and ``grace``: their worker stopped renewing it (it died)."""
    statement = select(Job).where(Job.state == JobState.RUNNING, Job.lease_expires_at < utcnow() - grace)
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


def unfinished_job(session: Session, correlation_id: str) -> Job | None:
    """A job of this correlation id that has not finished yet, if any."""
    statement = select(Job).where(Job.correlation_id == correlation_id, Job.state.not_in(FINISHED_STATES))
    return session.scalars(statement.limit(1)).first()


def is_cancel_requested(session: Session, job_id: uuid.UUID) -> bool:
    job = session.get(Job, job_id, populate_existing=True)
    return bool(job and job.cancel_requested)
