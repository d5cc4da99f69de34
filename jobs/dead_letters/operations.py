"""What operators do to dead letters: requeue (one, or every match), retry a job, purge."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs import messages, service
from jobs.audit import audit
from jobs.catalogue import validate_payload
from jobs.dead_letters.queries import Filter, get, letters_of, matching
from jobs.errors import ConflictError, InvalidJobError
from jobs.models import DeadLetter, DeadLetterState, Job, OutboxMessage, utcnow
from jobs.settings import Settings

CORRECTION_REFUSED = "The corrected payload is not valid."


def requeue(
    session: Session,
    dead_letter_id: uuid.UUID,
    *,
    actor: str,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> DeadLetter:
    """Send a dead letter's work again: its job from a first attempt, else the original message.

    A corrected ``payload`` is validated by the job type's schema (and checked against
    ``settings``, as a submission is) before anything changes.
    """
    letter = get(session, dead_letter_id, for_update=True)
    if letter.state != DeadLetterState.DEAD:
        raise ConflictError(f"Dead letter {dead_letter_id} is already {letter.state}.")
    job = session.get(Job, letter.job_id, with_for_update=True) if letter.job_id else None
    if job is not None:
        if payload is not None:
            job.payload = _corrected(job.type, payload, settings)
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
    audit(session, letter.id, actor, "requeue", reason, details)
    return letter


def _corrected(job_type: str, payload: dict[str, Any], settings: Settings | None) -> dict[str, Any]:
    try:
        return validate_payload(job_type, payload, settings)
    except InvalidJobError as exc:
        raise InvalidJobError(exc.errors, CORRECTION_REFUSED) from None


def retry_job(session: Session, job_id: uuid.UUID, *, actor: str) -> Job:
    """Retry a job by hand, audited; its waiting dead letters are resolved as requeued."""
    job = service.retry(session, job_id)
    audit(session, None, actor, "job-retry", None, {"job_id": str(job_id)})
    for letter in letters_of(session, job_id, DeadLetterState.DEAD):
        letter.state = DeadLetterState.REQUEUED
        audit(session, letter.id, actor, "requeue", "the job was retried", {"job_id": str(job_id)})
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
    audit(session, letter.id, actor, "purge", reason, None)
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
