"""What a handler may ask of the platform while it runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy.orm import Session, sessionmaker

from jobs.settings import Settings
from jobs.storage import Storage
from tasks.errors import FanOut, JobCancelledError


@dataclass(frozen=True)
class Child:
    """One child job, as its parent finds it when it is run again to join them."""

    id: uuid.UUID
    type: str
    state: str
    payload: dict[str, Any]
    result: Any
    error: str | None


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
    children: Callable[[], list[Child]] = list
    """The child jobs this job fanned out, oldest first; empty before it has."""
    """The platform's own database, for the upkeep handlers whose work is its data
    (``jobs.upkeep``); other handlers have no business there."""

    def progress(self, percent: int, message: str | None = None) -> None:
        """Record progress; raises JobCancelledError if the job was cancelled meanwhile."""
        if self.report(percent, message):
            raise JobCancelledError(f"Job {self.job_id} was cancelled.")

    def fan_out(self, children: list[tuple[str, dict[str, Any]]]) -> NoReturn:
        """Leave the job waiting for these child jobs, each (type, payload); the handler runs
        again, finding them in ``children()``, once the last has finished."""
        raise FanOut(children)
