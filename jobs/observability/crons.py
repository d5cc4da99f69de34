"""Sentry Crons: each schedule is a monitor, told how each job the beat fired for it ended.

The beat is the platform's own (``jobs.scheduler``), not Celery beat, so the Celery
integration's ``monitor_beat_tasks`` would never see a schedule fire. The worker running a
scheduled job checks in instead: ``in_progress`` as each attempt starts (one check-in per fired
slot, its id the job's), ``ok`` when the job succeeds, ``error`` when it is dead-lettered or
cancelled; an attempt that will be retried ends nothing. A slot no beat fired, or a job no worker
ran, is Sentry's own missed or timed-out check-in. The monitor's schedule is read from the
worker's settings, so workers and beats share ``CONVEYOR_SCHEDULE_*`` and the time zone.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs.models import ScheduleRun
from jobs.settings import Settings

SCHEDULED = "schedule:"
"""The correlation id the beat gives the job it fires, before the schedule's name."""
SLUG_PREFIX = "conveyor-"
STATUS_OF_END = {"succeeded": "ok", "cancelled": "error", "dead": "error"}


class Checkin:
    """One scheduled job's check-in; does nothing for a job no schedule fired, or without Sentry."""

    def __init__(self, settings: Settings, job_id: uuid.UUID, job_type: str, claim: Any, sessions: Any):
        fired = settings.sentry_dsn and (claim.correlation_id or "").startswith(SCHEDULED)
        self.monitor = _monitor(settings, job_id, job_type, claim, sessions) if fired else None
        self.id = job_id.hex
        self.started = time.monotonic()

    def ended(self, state: str | None) -> None:
        """The job's state once its attempt ended; a retry (None) sends nothing."""
        if state in STATUS_OF_END:
            self.send(STATUS_OF_END[state])

    def send(self, status: str) -> None:
        """The duration sent is the last attempt's."""
        if self.monitor is None:
            return
        from sentry_sdk.crons import capture_checkin

        slug, config = self.monitor
        duration = None if status == "in_progress" else time.monotonic() - self.started
        capture_checkin(slug, self.id, status, duration, config)  # type: ignore[arg-type]


def _monitor(
    settings: Settings, job_id: uuid.UUID, job_type: str, claim: Any, sessions: sessionmaker[Session]
) -> tuple[str, dict[str, Any]] | None:
    """The monitor of the schedule whose run fired this very job: a correlation id alone could be
    any client's (or a child's, which inherits it)."""
    from jobs.scheduler.entries import schedules

    schedule = schedules(settings).get(claim.correlation_id.removeprefix(SCHEDULED))
    if schedule is None or schedule.cadence is None or schedule.entry.job_type != job_type:
        return None
    if not _fired_by(sessions, schedule.name, job_id, claim.causation_id):
        return None
    config = {
        "schedule": _when(schedule.cadence),
        "timezone": settings.beat_timezone,
        "checkin_margin": _minutes(schedule.entry.grace_s),
        "max_runtime": _minutes(settings.task_time_limit_s * claim.max_attempts + schedule.entry.grace_s),
    }
    return SLUG_PREFIX + schedule.name, config


def _fired_by(sessions: sessionmaker[Session], schedule: str, job_id: uuid.UUID, run_id: str | None) -> bool:
    try:
        run = uuid.UUID(run_id or "")
    except ValueError:
        return False
    with sessions() as session:
        found = select(ScheduleRun.id).where(
            ScheduleRun.id == run, ScheduleRun.schedule == schedule, ScheduleRun.job_id == job_id
        )
        return session.scalar(found) is not None


def _when(cadence: Any) -> dict[str, Any]:
    from jobs.scheduler.cadence import Every

    if isinstance(cadence, Every):
        return {"type": "interval", "value": _minutes(cadence.seconds), "unit": "minute"}
    return {"type": "crontab", "value": cadence.text}


def _minutes(seconds: float) -> int:
    """Sentry counts a monitor's times in whole minutes, at least one."""
    return max(1, math.ceil(seconds / 60))
