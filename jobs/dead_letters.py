"""Dead letters: index what the broker-side dead-letter queues hold, and let operators act on them.

The API and the CLI call these same functions. Every requeue and purge writes an audit entry.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.orm import Session

from jobs import messages, service
from jobs.catalogue import validate_payload
from jobs.db import insert_unless_present
from jobs.errors import ConflictError, DeadLetterNotFoundError, InvalidJobError
from jobs.models import AuditEntry, DeadLetter, DeadLetterState, Job, JobState, OutboxMessage, utcnow

log = logging.getLogger(__name__)

CORRECTION_REFUSED = "The corrected payload is not valid."
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


@dataclass(frozen=True)
class Filter:
    queue: str | None = None
    type: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str = DeadLetterState.DEAD


def index(session: Session, failure: Failure) -> DeadLetter | None:
    """Store a dead letter once per message id and mark its job dead; None if already stored.

    The job is marked dead only while the letter is of its current dispatch: a letter indexed late
    (the relay was down, the broker held it) must not end a newer run of the job, such as an
    operator's retry. A requeued raw message keeps its id, so when it dies again its dead letter
    (requeued or purged) comes back.
    """
    now = utcnow()
    values = asdict(failure)
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


def _end_job(job: Job, letter: DeadLetter, failure: Failure) -> None:
    if letter.attempts == 0:
        letter.attempts = job.attempts
    if job.state in (JobState.SUCCEEDED, JobState.CANCELLED):
        return
    dispatch = messages.dispatch_of(failure.message_id)
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
    _audit(session, existing.id, "conveyor", "died-again", None, {"reason": failure.reason})
    return existing


def get(session: Session, dead_letter_id: uuid.UUID, *, for_update: bool = False) -> DeadLetter:
    found = session.get(DeadLetter, dead_letter_id, with_for_update=for_update)
    if found is None:
        raise DeadLetterNotFoundError(f"No dead letter with id {dead_letter_id}.")
    return found


def history(session: Session, dead_letter_id: uuid.UUID) -> list[AuditEntry]:
    statement = select(AuditEntry).where(AuditEntry.dead_letter_id == dead_letter_id)
    return list(session.scalars(statement.order_by(AuditEntry.id)))


def view(session: Session, letter: DeadLetter) -> dict[str, Any]:
    """The dead letter as the API and the CLI show it, with its requeue history and audit trail."""
    entries = [
        {"at": e.at, "actor": e.actor, "action": e.action, "reason": e.reason, "details": e.details}
        for e in history(session, letter.id)
    ]
    return {
        **{column.key: getattr(letter, column.key) for column in DeadLetter.__table__.columns},
        "requeues": [e for e in entries if e["action"] == "requeue"],
        "audit": entries,
    }


def matching(flt: Filter) -> Select[Any]:
    statement = select(DeadLetter).where(DeadLetter.state == flt.state)
    if flt.queue:
        statement = statement.where(DeadLetter.queue == flt.queue)
    if flt.type:
        statement = statement.where(DeadLetter.type == flt.type)
    if flt.error:
        statement = statement.where(
            or_(DeadLetter.error_type == flt.error, DeadLetter.error.contains(flt.error, autoescape=True))
        )
    if flt.since:
        statement = statement.where(DeadLetter.last_failed_at >= flt.since)
    if flt.until:
        statement = statement.where(DeadLetter.last_failed_at < flt.until)
    return statement


def list_dead_letters(
    session: Session, flt: Filter, limit: int, before: tuple[datetime, uuid.UUID] | None = None
) -> list[DeadLetter]:
    """Most recent failure first; ``before`` is the last row of the previous page."""
    statement = matching(flt).order_by(DeadLetter.last_failed_at.desc(), DeadLetter.id.desc())
    if before is not None:
        statement = statement.where(tuple_(DeadLetter.last_failed_at, DeadLetter.id) < before)
    return list(session.scalars(statement.limit(limit)))


def count(session: Session, flt: Filter) -> int:
    return session.scalar(select(func.count()).select_from(matching(flt).subquery())) or 0


def stats(session: Session) -> dict[str, dict[str, int]]:
    """Counts of dead letters waiting for an operator, by queue, by type and by error type."""
    result: dict[str, dict[str, int]] = {}
    for name, column in (
        ("queue", DeadLetter.queue),
        ("type", DeadLetter.type),
        ("error", DeadLetter.error_type),
    ):
        rows = session.execute(
            select(column, func.count()).where(DeadLetter.state == DeadLetterState.DEAD).group_by(column)
        )
        result[name] = {str(key): total for key, total in rows}
    return result


def requeue(
    session: Session,
    dead_letter_id: uuid.UUID,
    *,
    actor: str,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
) -> DeadLetter:
    """Send a dead letter's work again: its job from a first attempt, else the original message.

    A corrected ``payload`` is validated by the job type's schema before anything changes.
    """
    letter = get(session, dead_letter_id, for_update=True)
    if letter.state != DeadLetterState.DEAD:
        raise ConflictError(f"Dead letter {dead_letter_id} is already {letter.state}.")
    job = session.get(Job, letter.job_id, with_for_update=True) if letter.job_id else None
    if job is not None:
        if payload is not None:
            job.payload = _corrected(job.type, payload)
        service.requeue(session, job)
        job.requeued_from = letter.id
        details: dict[str, Any] = {"job_id": str(job.id), "dispatch": job.dispatch}
        details["payload_corrected"] = payload is not None
    else:
        if payload is not None:
            raise InvalidJobError(
                {"payload": ["Only a job's dead letter takes a payload."]}, CORRECTION_REFUSED
            )
        session.add(OutboxMessage(raw=messages.original_message(letter.message), available_at=utcnow()))
        details = {"republished": letter.message.get("routing_key")}
    letter.state = DeadLetterState.REQUEUED
    _audit(session, letter.id, actor, "requeue", reason, details)
    return letter


def _corrected(job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_payload(job_type, payload)
    except InvalidJobError as exc:
        raise InvalidJobError(exc.errors, CORRECTION_REFUSED) from None


def retry_job(session: Session, job_id: uuid.UUID, *, actor: str) -> Job:
    """Retry a job by hand; its waiting dead letters are resolved as requeued, and audited."""
    job = service.retry(session, job_id)
    waiting = select(DeadLetter).where(DeadLetter.job_id == job_id, DeadLetter.state == DeadLetterState.DEAD)
    for letter in session.scalars(waiting):
        letter.state = DeadLetterState.REQUEUED
        _audit(session, letter.id, actor, "requeue", "the job was retried", {"job_id": str(job_id)})
    return job


def requeue_matching(
    session: Session, flt: Filter, *, actor: str, reason: str | None = None, limit: int = 10_000
) -> tuple[list[uuid.UUID], list[dict[str, str]]]:
    """Requeue every matching dead letter; those whose job moved on are skipped, with why."""
    ids = session.scalars(matching(flt).with_only_columns(DeadLetter.id).limit(limit)).all()
    done, skipped = [], []
    for dead_letter_id in ids:
        try:
            requeue(session, dead_letter_id, actor=actor, reason=reason)
        except ConflictError as exc:
            skipped.append({"id": str(dead_letter_id), "why": str(exc)})
        else:
            done.append(dead_letter_id)
    return done, skipped


def purge(
    session: Session, dead_letter_id: uuid.UUID, *, actor: str, reason: str | None = None
) -> DeadLetter:
    """Drop a dead letter's message for good; the row stays as a tombstone with its audit trail."""
    letter = get(session, dead_letter_id, for_update=True)
    if letter.state == DeadLetterState.PURGED:
        raise ConflictError(f"Dead letter {dead_letter_id} is already purged.")
    letter.state = DeadLetterState.PURGED
    letter.message = {}
    letter.traceback = None
    _audit(session, letter.id, actor, "purge", reason, None)
    return letter


def purge_expired(session: Session, retention: timedelta, *, actor: str) -> int:
    """Purge dead letters whose last failure is older than ``retention``; never newer ones."""
    cutoff = utcnow() - retention
    ids: Sequence[uuid.UUID] = session.scalars(
        select(DeadLetter.id).where(
            DeadLetter.state != DeadLetterState.PURGED, DeadLetter.last_failed_at < cutoff
        )
    ).all()
    for dead_letter_id in ids:
        purge(session, dead_letter_id, actor=actor, reason=f"older than {retention.days} days")
    return len(ids)


def _audit(
    session: Session,
    dead_letter_id: uuid.UUID,
    actor: str,
    action: str,
    reason: str | None,
    details: dict[str, Any] | None,
) -> None:
    entry = AuditEntry(at=utcnow(), actor=actor, action=action, reason=reason, details=details)
    entry.dead_letter_id = dead_letter_id
    session.add(entry)
