"""Task events by `CONVEYOR_TASK_EVENTS`: `always` sends them from the worker's start, so Flower
shows what ran before it connected; `on-demand` (Celery's default) waits for a monitor to ask;
`off` refuses the ask, for workers whose events nobody may read."""

from __future__ import annotations

from typing import Any

from celery.worker import control

from jobs.broker.config import TASK_EVENTS_KEY


def register() -> None:
    """Celery's own `enable_events` control command, behind the setting."""
    control.control_command(name="enable_events")(_enable_events)


def _enable_events(state: Any) -> dict[str, str]:
    if state.app.conf.get(TASK_EVENTS_KEY) == "off":
        return control.ok("task events are off on this worker (CONVEYOR_TASK_EVENTS=off)")
    return control.enable_events(state)
