"""Sentry Crons: each schedule is a monitor, told how each job the beat fired for it ended.

The beat is the platform's own (``jobs.scheduler``), not Celery beat, so the Celery
integration's ``monitor_beat_tasks`` would never see a schedule fire. The worker running a
scheduled job checks in instead: in progress when an attempt starts, ok when the job succeeds,
error when it is dead-lettered or cancelled. A retried attempt sends nothing, so the check-in of
a fired slot (its id is the job's) ends once. A slot no beat fired, or a job no worker ran, is
Sentry's own missed or timed-out check-in.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from jobs.settings import Settings

SCHEDULED = "schedule:"
"""The correlation id the beat gives the job it fires, before the schedule's name."""
SLUG_PREFIX = "conveyor-"
STATUS_OF_END = {"succeeded": "ok", "cancelled": "error", "dead": "error"}


class Checkin:
    """One scheduled job's check-in; does nothing for a job no schedule fired, or without Sentry."""

    def __init__(self, settings: Settings, job_id: uuid.UUID, correlation_id: str | None):
        self.monitor = _monitor(settings, correlation_id) if settings.sentry_dsn else None
        self.id = job_id.hex
        self.started = time.monotonic()

    def ended(self, state: str | None) -> None:
        """The job's state once its attempt ended; a retry (None) sends nothing."""
        if state in STATUS_OF_END:
            self.send(STATUS_OF_END[state])

    def send(self, status: str) -> None:
        if self.monitor is None:
            return
        from sentry_sdk.crons import capture_checkin

        slug, config = self.monitor
        duration = None if status == "in_progress" else time.monotonic() - self.started
        capture_checkin(slug, self.id, status, duration, config)  # type: ignore[arg-type]


def _monitor(settings: Settings, correlation_id: str | None) -> tuple[str, dict[str, Any]] | None:
    from jobs.scheduler.cadence import Every
    from jobs.scheduler.entries import schedules

    if not (correlation_id or "").startswith(SCHEDULED):
        return None
    schedule = schedules(settings).get((correlation_id or "").removeprefix(SCHEDULED))
    if schedule is None or schedule.cadence is None:
        return None
    cadence = schedule.cadence
    if isinstance(cadence, Every):
        when = {"type": "interval", "value": _minutes(cadence.seconds), "unit": "minute"}
    else:
        when = {"type": "crontab", "value": cadence.text}
    config = {
        "schedule": when,
        "timezone": settings.beat_timezone,
        "checkin_margin": _minutes(schedule.entry.grace_s),
        "max_runtime": _minutes(settings.task_time_limit_s + schedule.entry.grace_s),
    }
    return SLUG_PREFIX + schedule.name, config


def _minutes(seconds: float) -> int:
    """Sentry counts a monitor's times in whole minutes, at least one."""
    return max(1, math.ceil(seconds / 60))
