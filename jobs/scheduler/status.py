"""What ``GET /v1/schedules`` and ``conveyor schedules list`` show of each schedule: when it
runs next, how its last run ended, and whether it is late."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.models import Job, JobState, ScheduleRun, utcnow
from jobs.scheduler.entries import Schedule
from jobs.scheduler.runs import state_of


def describe(session: Session, schedule: Schedule, now: datetime | None = None) -> dict[str, Any]:
    """Late: no successful run for longer than a period plus the entry's grace."""
    now = now or utcnow()
    state = state_of(session, schedule.name)
    last_run = session.execute(_runs(session, schedule.name).limit(1)).first()
    success = session.execute(
        _runs(session, schedule.name).where(Job.state == JobState.SUCCEEDED).limit(1)
    ).first()
    running = schedule.off is None and not state.paused
    cadence = schedule.cadence
    reference = success.ScheduleRun.fired_at if success else state.since
    late = bool(running and cadence and reference < now - cadence.period(now) - schedule.grace)
    return {
        "name": schedule.name,
        "job_type": schedule.entry.job_type,
        "description": schedule.entry.description,
        "cron": schedule.cron,
        "catch_up": schedule.entry.catch_up,
        "grace_s": schedule.entry.grace_s,
        "off": schedule.off,
        "paused": state.paused,
        "paused_by": state.changed_by if state.paused else None,
        "next_run": cadence.after(now) if running and cadence else None,
        "last_run": _run_view(last_run) if last_run else None,
        "last_outcome": _outcome(last_run) if last_run else None,
        "last_success": success.ScheduleRun.fired_at if success else None,
        "late": late,
    }


def _runs(session: Session, name: str) -> Any:
    return (
        select(ScheduleRun, Job.state)
        .outerjoin(Job, Job.id == ScheduleRun.job_id)
        .where(ScheduleRun.schedule == name)
        .order_by(ScheduleRun.fired_at.desc())
    )


def _outcome(row: Any) -> str:
    return "skipped" if row.ScheduleRun.job_id is None else str(row.state)


def _run_view(row: Any) -> dict[str, Any]:
    run: ScheduleRun = row.ScheduleRun
    return {
        "id": run.id,
        "slot": run.slot,
        "trigger": run.trigger,
        "fired_at": run.fired_at,
        "fired_by": run.fired_by,
        "job_id": run.job_id,
        "skipped": run.skipped,
        "outcome": _outcome(row),
    }
