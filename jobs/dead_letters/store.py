"""Indexing: a failure becomes a dead letter once per message id, and ends its job when it may."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from jobs import messages, service
from jobs.audit import audit
from jobs.db import insert_unless_present
from jobs.models import DeadLetter, DeadLetterState, Job, JobState, utcnow

log = logging.getLogger(__name__)

DEAD_LETTERS = cast(Table, DeadLetter.__table__)

# What a dead letter that dies again takes from its new failure.
REVIVED_FIELDS = (
    "reason",
    "error_type",
    "error",
    "traceback",
    "attempts",
    "worker",
    "last_failed_at",
    "message",
)


@dataclass(frozen=True)
class Failure:
    """What a worker (or the broker) knew when it gave up on a message."""

    message_id: str
    queue: str
    reason: str
    error_type: str
    error: str
    message: dict[str, Any]
    job_id: uuid.UUID | None = None
    type: str | None = None
    task_name: str | None = None
    traceback: str | None = None
    attempts: int = 0
    worker: str | None = None
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None


def index(session: Session, failure: Failure) -> DeadLetter | None:
    """Store a dead letter once per message id and mark its job dead; None if already stored.

    The job is marked dead only while the letter is of its current dispatch: a letter indexed late
    (the relay was down, the broker held it) must not end a newer run of the job, such as an
    operator's retry. A requeued raw message keeps its id, so when it dies again its dead letter
    (requeued or purged) comes back.
    """
    now = utcnow()
    values = fit(DEAD_LETTERS, asdict(failure))
    values["first_failed_at"] = failure.first_failed_at or failure.last_failed_at or now
    values["last_failed_at"] = failure.last_failed_at or now
    values.update(id=uuid.uuid4(), state=DeadLetterState.DEAD, created_at=now)
    stored = session.execute(insert_unless_present(session, DeadLetter, **values).returning(DeadLetter.id))
    if stored.first() is not None:
        letter = session.get(DeadLetter, values["id"])
    else:
        letter = _revive(session, failure, values)
    if letter is not None and failure.job_id is not None:
        job = session.get(Job, failure.job_id, with_for_update=True)
        if job is not None:
            _end_job(job, letter, failure)
    return letter


def fit(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Values from a message's headers, made storable: safe text, cut to each column's length.
    Headers are whatever a worker, the broker or a stranger put there; the letter must store."""
    fitted = dict(values)
    for column in table.columns:
        value = fitted.get(column.key)
        if isinstance(value, str):
            length = getattr(column.type, "length", None)
            fitted[column.key] = messages.safe_text(value)[:length]
    return fitted


def _end_job(job: Job, letter: DeadLetter, failure: Failure) -> None:
    if letter.attempts == 0:
        letter.attempts = job.attempts
    if job.state in (JobState.SUCCEEDED, JobState.CANCELLED):
        return
    dispatch = messages.dispatch_of(failure.message_id)
    if service.holds_live_lease(job) and job.worker != failure.worker:
        # Another claim runs the job now: RabbitMQ counted redeliveries (a consumer timeout), or
        # the letter's worker lost its claim before it gave up.
        log.info(
            "Dead letter %s names job %s, which a live worker still runs: the job stays running.",
            letter.id,
            job.id,
        )
        return
    if dispatch != job.dispatch:
        log.info(
            "Dead letter %s is of dispatch %s of job %s, which is at dispatch %d: the job stays %s.",
            *(letter.id, dispatch, job.id, job.dispatch, job.state),
        )
        return
    service.mark_dead(job, failure.error_type, failure.error)


def _revive(session: Session, failure: Failure, values: dict[str, Any]) -> DeadLetter | None:
    existing = session.scalars(
        select(DeadLetter).where(DeadLetter.message_id == failure.message_id).with_for_update()
    ).one()
    if existing.state == DeadLetterState.DEAD:
        return None
    for name in REVIVED_FIELDS:
        setattr(existing, name, values[name])
    existing.state = DeadLetterState.DEAD
    audit(session, existing.id, "conveyor", "died-again", None, {"reason": failure.reason})
    return existing
