"""A parent job and the child jobs it fans out: the join, without a worker waiting on it.

A handler that splits its work asks for children; the parent is then ``waiting`` (no worker,
no lease) and each child is an ordinary job, with its own retries and dead letter, whose
``parent_id`` (set here only) and ``causation_id`` name the parent. When the last child
finishes, the parent is queued again as a new dispatch, and its handler, finding its children,
joins their results. Whoever finishes a child releases the parent, in a transaction of its own
that locks the parent's row alone, so exactly one of two children finishing at once sees none
left; the relay's sweep releases any parent that was missed (a child cancelled by hand, or
dead-lettered by the sweep itself). Requeueing a parent requeues its failed children with it.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from jobs.models import Job, JobState
from jobs.service.submission import Submission, submit
from jobs.service.transitions import UNFINISHED, finish, holds_claim, send_again
from jobs.settings import Settings

log = logging.getLogger(__name__)


def children_of(session: Session, parent_id: uuid.UUID, limit: int | None = None) -> list[Job]:
    statement = select(Job).where(Job.parent_id == parent_id).order_by(Job.created_at, Job.id)
    return list(session.scalars(statement.limit(limit)))


def wait_for_children(
    session: Session, settings: Settings, job: Job, token: str, children: list[Submission]
) -> bool:
    """Submit ``children`` (none if the job has some already) and leave the job waiting for
    them; a job cancelled meanwhile ends instead. False if the claim ``token`` names is no
    longer the job's."""
    if not holds_claim(job, token, "fan-out"):
        return False
    if job.cancel_requested:
        finish(job, JobState.CANCELLED)
        return True
    if not children_of(session, job.id):
        for child in children:
            submit(session, settings, _child_of(job, child))
    job.state = JobState.WAITING
    job.lease_expires_at = job.claim_token = None
    job.progress_message = "waiting for its child jobs"
    session.flush()
    release(session, job.id)
    return True


def _child_of(parent: Job, child: Submission) -> Submission:
    return Submission(
        type=child.type,
        payload=child.payload,
        queue=child.queue,
        priority=parent.priority,
        max_attempts=child.max_attempts,
        correlation_id=parent.correlation_id,
        causation_id=str(parent.id),
        parent_id=parent.id,
    )


def release(session: Session, parent_id: uuid.UUID) -> bool:
    """Queue a waiting parent again once every child has finished; whether it was."""
    parent = session.get(Job, parent_id, with_for_update=True, populate_existing=True)
    if parent is None or parent.state != JobState.WAITING:
        return False
    unfinished = select(func.count()).where(Job.parent_id == parent_id, Job.state.in_(UNFINISHED))
    if session.scalar(unfinished):
        return False
    parent.state = JobState.QUEUED
    parent.deliveries = 0
    send_again(session, parent)
    log.info("Job %s: its child jobs have finished; it is queued to join them.", parent_id)
    return True


def release_finished_families(session: Session) -> int:
    """The sweep's share: each waiting parent none of whose children is unfinished, each in a
    savepoint of its own (one that fails waits for the next sweep)."""
    waiting = select(Job.id).where(Job.state == JobState.WAITING).limit(100)
    released = 0
    for parent_id in list(session.scalars(waiting)):
        try:
            with session.begin_nested():
                released += release(session, parent_id)
        except Exception:
            log.error(
                "Could not release parent job %s; the next sweep tries again.", parent_id, exc_info=True
            )
    return released


def update_parent_progress(db: Session | Connection, parent_id: uuid.UUID | None) -> None:
    """A waiting parent's progress is its children's mean (pages done / total, for children of
    equal size). Its own statement, locking the parent's row alone."""
    if parent_id is None:
        return
    mean = select(func.avg(Job.progress)).where(Job.parent_id == parent_id).scalar_subquery()
    db.execute(
        update(Job)
        .where(Job.id == parent_id, Job.state == JobState.WAITING)
        .values(progress=func.coalesce(func.floor(mean), 0))
    )
