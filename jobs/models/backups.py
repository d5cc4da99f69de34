"""The backup manifest and the restore drills: a backup counts only once ``verified``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jobs.models.base import Base, UTCDateTime, utcnow


class Backup(Base):
    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_target_started", "target", "started_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    target: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_s: Mapped[float] = mapped_column(Float)
    server_version: Mapped[str] = mapped_column(String(64))
    migration_head: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tables: Mapped[dict[str, Any]] = mapped_column(JSON)
    """``{"schema.table": {"rows": exact count in the dump's snapshot, "estimate": reltuples}}``."""
    verified: Mapped[bool] = mapped_column(default=False)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verify_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RestoreDrill(Base):
    __tablename__ = "restore_drills"
    __table_args__ = (Index("ix_restore_drills_started", "started_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    backup_id: Mapped[uuid.UUID] = mapped_column()
    target: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    rto_s: Mapped[float] = mapped_column(Float)
    """Measured recovery time: download + restore + check."""
    download_s: Mapped[float] = mapped_column(Float)
    restore_s: Mapped[float] = mapped_column(Float)
    check_s: Mapped[float] = mapped_column(Float)
    backup_age_s: Mapped[float] = mapped_column(Float)
    """The recovery point at that moment: how old the newest verified backup was."""
    tables_checked: Mapped[int] = mapped_column(default=0)
