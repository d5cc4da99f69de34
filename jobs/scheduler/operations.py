"""What operators do with schedules, from the API and the CLI alike; each change is audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from jobs.audit import audit
from jobs.scheduler.entries import schedules
from jobs.scheduler.runs import known, run_now, set_paused
from jobs.scheduler.status import describe
from jobs.settings import Settings


def overview(session: Session, settings: Settings) -> list[dict[str, Any]]:
    return [describe(session, schedule) for schedule in schedules(settings).values()]


def one(session: Session, settings: Settings, name: str) -> dict[str, Any]:
    return describe(session, known(schedules(settings), name))


def run(session: Session, settings: Settings, name: str, actor: str) -> dict[str, Any]:
    """Fire the schedule now; returns its run as ``last_run`` shows it."""
    fired = run_now(session, settings, known(schedules(settings), name), actor)
    audit(session, None, actor, "schedule-run", None, {"schedule": name, "job_id": str(fired.job_id)})
    session.flush()
    found: dict[str, Any] = one(session, settings, name)["last_run"]
    return found


def pause(session: Session, settings: Settings, name: str, actor: str, *, paused: bool) -> dict[str, Any]:
    known(schedules(settings), name)
    set_paused(session, name, paused, actor)
    audit(session, None, actor, "schedule-pause" if paused else "schedule-resume", None, {"schedule": name})
    return one(session, settings, name)
