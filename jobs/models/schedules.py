"""What beat did: one row per fired (or knowingly skipped) slot of a schedule, and each
schedule's paused flag. The unique (schedule, slot) is what stops two beats firing one slot."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jobs.models.base import Base, UTCDateTime, utcnow


class ScheduleState(Base):
    __tablename__ = "schedule_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)
    changed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When beat first knew of the entry: a schedule that never ran is late from here.
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduleRun(Base):
    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule", "slot", name="uq_schedule_runs_slot"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    schedule: Mapped[str] = mapped_column(String(64))
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(16))
    """``schedule``, ``catch-up`` (one run for slots missed while no beat ran) or ``manual``."""
    job_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    skipped: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why no job was submitted for this slot, when none was."""
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fired_by: Mapped[str] = mapped_column(String(200))


class Heartbeat(Base):
    """When a beat or relay process (``instance``: host and pid) last turned its loop; the
    relay's metrics tell how long ago the newest of each component did."""

    __tablename__ = "heartbeats"

    component: Mapped[str] = mapped_column(String(16), primary_key=True)
    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
