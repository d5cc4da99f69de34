"""Import profiles: what a file is imported into. Every save is a new version, kept, so a job
records the version it ran with and a later edit never changes what an earlier import meant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jobs.models.base import Base, UTCDateTime, utcnow


class ImportProfile(Base):
    __tablename__ = "import_profiles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.definition,
            "name": self.name,
            "version": self.version,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }
