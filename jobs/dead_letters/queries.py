"""Reading dead letters: one, a filtered page, counts, and each one's audit trail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from jobs.db import newest_first
from jobs.errors import DeadLetterNotFoundError
from jobs.models import AuditEntry, DeadLetter, DeadLetterState


@dataclass(frozen=True)
class Filter:
    queue: str | None = None
    type: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str = DeadLetterState.DEAD


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
    return views(session, [letter])[0]


def views(session: Session, letters: list[DeadLetter]) -> list[dict[str, Any]]:
    """``view`` of each letter, with every audit trail read in one query, not one per letter."""
    trails: dict[uuid.UUID, list[dict[str, Any]]] = {letter.id: [] for letter in letters}
    if letters:
        entries = (
            select(AuditEntry).where(AuditEntry.dead_letter_id.in_(list(trails))).order_by(AuditEntry.id)
        )
        for e in session.scalars(entries):
            entry = {
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "reason": e.reason,
                "details": e.details,
            }
            trails[e.dead_letter_id].append(entry)  # type: ignore[index]
    return [_shown(letter, trails[letter.id]) for letter in letters]


def _shown(letter: DeadLetter, entries: list[dict[str, Any]]) -> dict[str, Any]:
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
    statement = newest_first(matching(flt), DeadLetter.last_failed_at, DeadLetter.id, before)
    return list(session.scalars(statement.limit(limit)))


def letters_of(session: Session, job_id: uuid.UUID, state: str | None = None) -> list[DeadLetter]:
    """A job's dead letters (in ``state`` only, when given), oldest failure first."""
    statement = select(DeadLetter).where(DeadLetter.job_id == job_id)
    if state is not None:
        statement = statement.where(DeadLetter.state == state)
    return list(session.scalars(statement.order_by(DeadLetter.last_failed_at, DeadLetter.id)))


def types_matching(session: Session, flt: Filter) -> list[str | None]:
    """The job types among the matching dead letters: what a bulk requeue would run again."""
    return list(session.scalars(matching(flt).with_only_columns(DeadLetter.type).distinct()))


def count(session: Session, flt: Filter) -> int:
    return session.scalar(select(func.count()).select_from(matching(flt).subquery())) or 0


def stats(session: Session) -> dict[str, dict[str, int]]:
    """Counts of dead letters waiting for an operator, by queue, type, error type and reason."""
    by = (
        ("queue", DeadLetter.queue),
        ("type", DeadLetter.type),
        ("error", DeadLetter.error_type),
        ("reason", DeadLetter.reason),
    )
    return {name: waiting_by(session, column) for name, column in by}


def waiting_by(session: Session, column: Any) -> dict[str, int]:
    """Dead letters waiting for an operator, counted by ``column``."""
    rows = session.execute(
        select(column, func.count()).where(DeadLetter.state == DeadLetterState.DEAD).group_by(column)
    )
    return {str(key): total for key, total in rows}
