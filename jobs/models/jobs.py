"""A job, its states, and the outbox rows that publish it. Only ``jobs.service`` changes a job's state."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jobs.models.base import Base, UTCDateTime, utcnow


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING = "waiting"
    """For the child jobs it fanned out (``jobs.service.families``); no worker holds it."""
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})


SHOWN_COLUMNS = (
    *("id", "type", "queue", "priority", "state", "attempts", "max_attempts", "payload", "result"),
    *("cancel_requested", "correlation_id", "causation_id", "worker", "run_at", "created_at"),
    *("started_at", "finished_at", "next_retry_at", "requeued_from", "parent_id"),
)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_type_created", "type", "created_at"),
        Index("ix_jobs_parent", "parent_id", "state"),
        Index("ix_jobs_correlation_created", "correlation_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    dispatch: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    progress_message: Mapped[str | None] = mapped_column(String(200), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    causation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set by each claim; a write that follows a claim must name it (see jobs.service.claims).
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    requeued_from: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    # Set only by a fan-out (jobs.service.families); a caller's causation_id names no family.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def to_dict(self) -> dict[str, Any]:
        """The job as the API and the CLI show it."""
        return view_of({name: getattr(self, name) for name in VIEWED_COLUMNS})


VIEWED_COLUMNS = (*SHOWN_COLUMNS, "error_type", "error_message", "progress", "progress_message")


def view_of(row: dict[str, Any]) -> dict[str, Any]:
    """A job's row (``VIEWED_COLUMNS`` at least) as the API and the CLI show it: a submission
    answers from the values it wrote, without building the ORM object."""
    error = {"type": row["error_type"], "message": row["error_message"]} if row["error_type"] else None
    return {
        **{name: row.get(name) for name in SHOWN_COLUMNS},  # a new row has no result column
        "error": error,
        "progress": {"percent": row["progress"], "message": row["progress_message"]},
    }


class OutboxMessage(Base):
    """A message waiting to be published, written in the same transaction as the state it follows.

    Either a job's dispatch (``job_id``), or a raw message to republish as it was (``raw``).
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_available", "available_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True)
    dispatch: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
