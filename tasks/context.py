"""What a handler may ask of the platform while it runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobs.settings import Settings
from jobs.storage import Storage
from tasks.errors import JobCancelledError


@dataclass(frozen=True)
class JobContext:
    job_id: uuid.UUID
    attempt: int
    delivery: int
    report: Callable[[int, str | None], bool]
    settings: Settings
    resolve: Callable[[Mapping[str, Any]], tuple[Storage, str]]
    """The storage and key of an input the payload names (``catalogue.inputs.InputRef``)."""
    sessions: sessionmaker[Session]
    """The platform's own database, for the upkeep handlers whose work is its data
    (``jobs.upkeep``); other handlers have no business there."""

    def progress(self, percent: int, message: str | None = None) -> None:
        """Record progress; raises JobCancelledError if the job was cancelled meanwhile."""
        if self.report(percent, message):
            raise JobCancelledError(f"Job {self.job_id} was cancelled.")
