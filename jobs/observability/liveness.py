"""A long-running process's sign of life, as its loop turns, in two places: a file that
``conveyor doctor --check beat|relay`` (the container's healthcheck) reads, and a row in
``heartbeats`` that the relay's metrics tell the age of (alerts: "beat missing").

The file is of this process in this container, and a loop that turns while the database is down
is alive (the doctor's other checks tell the outage); the row is what the rest of the platform
can see of it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jobs.models import Heartbeat, utcnow
from jobs.settings import Settings

log = logging.getLogger(__name__)

COMPONENTS = ("beat", "relay")
TOUCH_EVERY_S = 5.0
ROW_EVERY_S = 15.0
STALE_AFTER_S = 60.0  # a dozen missed touches: the loop is stuck, not slow
FORGET_AFTER = timedelta(days=1)  # rows of processes gone


def _path(settings: Settings, component: str) -> Path:
    return settings.data_dir / "liveness" / component


class Liveness:
    def __init__(self, settings: Settings, component: str, sessions: sessionmaker[Session]):
        self.path, self.component, self.sessions = _path(settings, component), component, sessions
        self.instance = f"{socket.gethostname()}/{os.getpid()}"
        self.touched = self.written = 0.0

    def touch(self) -> None:
        """At most once every TOUCH_EVERY_S (the row: ROW_EVERY_S), so a busy loop costs nothing."""
        now = time.monotonic()
        if now - self.touched >= TOUCH_EVERY_S:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            self.touched = now
        if now - self.written >= ROW_EVERY_S:
            self.written = now
            self._write()

    def _write(self) -> None:
        try:
            with self.sessions.begin() as session:
                session.merge(Heartbeat(component=self.component, instance=self.instance, beat_at=utcnow()))
                gone = Heartbeat.component == self.component, Heartbeat.beat_at < utcnow() - FORGET_AFTER
                session.execute(delete(Heartbeat).where(*gone))
        except SQLAlchemyError as exc:  # the database's outage is told elsewhere
            log.debug("The %s heartbeat row was not written: %s", self.component, exc)


def age_s(settings: Settings, component: str) -> float | None:
    """Seconds since the component's loop last turned here; None if it never has."""
    try:
        return time.time() - _path(settings, component).stat().st_mtime
    except FileNotFoundError:
        return None
