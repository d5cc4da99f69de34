"""A long-running process's sign of life: a file it touches as its loop turns, which
``conveyor doctor --check beat|relay`` (the container's healthcheck) reads.

A file, not a database row: the check is of this process in this container, and a loop that
turns while the database is down is alive (the doctor's other checks tell the outage).
"""

from __future__ import annotations

import time
from pathlib import Path

from jobs.settings import Settings

COMPONENTS = ("beat", "relay")
TOUCH_EVERY_S = 5.0
STALE_AFTER_S = 60.0  # a dozen missed touches: the loop is stuck, not slow


def _path(settings: Settings, component: str) -> Path:
    return settings.data_dir / "liveness" / component


class Liveness:
    def __init__(self, settings: Settings, component: str):
        self.path, self.last = _path(settings, component), 0.0

    def touch(self) -> None:
        """At most once every TOUCH_EVERY_S, so a busy loop costs nothing."""
        now = time.monotonic()
        if now - self.last >= TOUCH_EVERY_S:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            self.last = now


def age_s(settings: Settings, component: str) -> float | None:
    """Seconds since the component's loop last turned here; None if it never has."""
    try:
        return time.time() - _path(settings, component).stat().st_mtime
    except FileNotFoundError:
        return None
