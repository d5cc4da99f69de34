"""A job's first write: its row and its outbox message, and the outbox row every later dispatch adds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, Table, bindparam, insert, select
from sqlalchemy.orm import Session

from jobs.broker.queues import QUEUES
from jobs.catalogue import JOB_TYPES, validate_payload
from jobs.db import HotStatement, is_postgresql
from jobs.errors import InvalidJobError
from jobs.models import Job, JobState, OutboxMessage, utcnow
from jobs.settings import Settings

JOBS = cast(Table, Job.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)


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
    parent_id: uuid.UUID | None = None


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
_HOT_INSERT_JOB_AND_OUTBOX = HotStatement(_INSERT_JOB_AND_OUTBOX, json=("p_payload",))
_INSERT_OUTBOX = insert(OUTBOX).values(
    job_id=bindparam("p_id"), dispatch=bindparam("p_dispatch"), available_at=bindparam("p_queued_at")
)


def submit(db: Session | Connection, settings: Settings, submission: Submission) -> Job:
    """Record a queued job and its outbox message; the relay publishes it after commit. The job
    returned is not attached to the session."""
    return Job(**submit_row(db, settings, submission))


def submit_row(db: Session | Connection, settings: Settings, submission: Submission) -> dict[str, Any]:
    """``submit``, returning the row's values: the API answers from them (``view_of``) without
    the ORM object, whose making cost a tenth of a request.

    Core inserts rather than the ORM's unit of work, which cost more than all the rest of a
    submission."""
    values = job_row(settings, submission, utcnow())
    parameters = {f"p_{name}": value for name, value in values.items()}
    if is_postgresql(db):
        _HOT_INSERT_JOB_AND_OUTBOX.run(db, parameters)
    else:
        db.execute(_INSERT_JOB, parameters)
        db.execute(_INSERT_OUTBOX, parameters)
    return values


def submit_rows(db: Session | Connection, rows: list[dict[str, Any]]) -> None:
    """Record many queued jobs (``job_row``'s) and their outbox messages in the caller's
    transaction: on PostgreSQL a COPY per table (a third of the CPU of pipelined INSERTs, and a
    fifteenth of one multi-row INSERT as SQLAlchemy compiles it), on SQLite an executemany."""
    if not rows:
        return
    outbox = [(row["id"], row["dispatch"], row["queued_at"]) for row in rows]
    if not is_postgresql(db):
        db.execute(insert(JOBS), rows)
        db.execute(insert(OUTBOX), [dict(zip(OUTBOX_COPIED, values, strict=True)) for values in outbox])
        return
    connection = db.connection() if isinstance(db, Session) else db
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        columns = list(rows[0])
        with cursor.copy(f"COPY {JOBS.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([Json(row[name]) if name in JSON_COLUMNS else row[name] for name in columns])
        with cursor.copy(f"COPY {OUTBOX.name} ({', '.join(OUTBOX_COPIED)}) FROM STDIN") as copy:
            for values in outbox:
                copy.write_row(values)


JSON_COLUMNS = frozenset(column.name for column in JOBS.c if isinstance(column.type, JSON))
OUTBOX_COPIED = ("job_id", "dispatch", "available_at")


def job_row(settings: Settings, submission: Submission, now: datetime) -> dict[str, Any]:
    """The new job's row, its payload loaded by its type's schema; raises InvalidJobError."""
    payload = validate_payload(submission.type, submission.payload, settings)
    _check_submitter(submission)
    queue = submission.queue or JOB_TYPES[submission.type].queue
    if queue not in QUEUES:
        raise InvalidJobError({"queue": [f"Unknown queue {queue!r}; one of {', '.join(QUEUES)}."]})
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
        parent_id=submission.parent_id,
        created_at=now,
        queued_at=submission.run_at or now,
    )
    return values


def _check_submitter(submission: Submission) -> None:
    if JOB_TYPES[submission.type].internal and submission.parent_id is None:
        message = f"{submission.type} jobs are submitted by the job that fans them out."
        raise InvalidJobError({"type": [message]})


def enqueue(session: Session, job: Job, available_at: datetime | None = None) -> None:
    job.queued_at = available_at or utcnow()
    parameters = {"p_id": job.id, "p_dispatch": job.dispatch, "p_queued_at": job.queued_at}
    session.execute(_INSERT_OUTBOX, parameters)  # flushes the job's changes first
