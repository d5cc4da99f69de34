"""``conveyor beat``: wait to lead, then fire each due slot of each schedule, until a signal.

A beat that does not lead tries the lock every ``CONVEYOR_BEAT_LOCK_INTERVAL_S``, so it takes
over within that interval of the leader's death. Slots missed by less than twice the interval
(a takeover) are all fired late; older ones follow the schedule's catch-up policy, so a restart
after downtime never fires a burst.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from jobs.db import Database
from jobs.models import utcnow
from jobs.observability.liveness import Liveness
from jobs.scheduler.entries import Schedule, schedules
from jobs.scheduler.leader import leader_lock
from jobs.scheduler.runs import CATCH_UP, SCHEDULED, Slot, baselines, fire

log = logging.getLogger(__name__)

MAX_WAIT_S = 1.0  # also how soon a leader notices a lost lock
MIN_WAIT_S = 0.05
MAX_SLOTS_PER_TICK = 20


class Beat:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow):
        self.db, self.clock = db, clock
        self.active = [s for s in schedules(db.settings).values() if s.off is None]
        self.lock = leader_lock(db.settings, db.engine)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.window = timedelta(seconds=2 * db.settings.beat_lock_interval_s)
        self.since: dict[str, datetime] = {}
        """Each schedule's baseline as last read: never later than the stored one, so a slot
        not due against it is not due at all, and the database is read only when one is."""

    def run(self, stop: threading.Event) -> None:
        leading, alive = False, Liveness(self.db.settings, "beat", self.db.sessions)
        while not stop.is_set():
            if not (self.lock.held() or self.lock.acquire()):
                if leading:
                    log.warning("Beat %s is no longer the leader.", self.identity)
                leading = False
                alive.touch()
                stop.wait(self.db.settings.beat_lock_interval_s)
                continue
            if not leading:
                log.info("Beat %s leads; it fires %s.", self.identity, ", ".join(s.name for s in self.active))
            leading = True
            self.tick()
            alive.touch()  # after the tick, so a slot never waits on it
            stop.wait(self.wait())
        self.lock.release()

    def next_due(self) -> datetime | None:
        if not self.active or len(self.since) < len(self.active):
            return None
        return min(s.cadence.after(self.since[s.name]) for s in self.active if s.cadence)

    def wait(self) -> float:
        """Until the next slot, or a second while one is overdue (after an error, say)."""
        upcoming = self.next_due()
        if upcoming is None or upcoming <= self.clock():
            return MAX_WAIT_S
        return min(MAX_WAIT_S, max(MIN_WAIT_S, (upcoming - self.clock()).total_seconds()))

    def tick(self) -> None:
        """Fire what is due now; a database error waits for the next tick."""
        upcoming = self.next_due()
        if upcoming is not None and self.clock() < upcoming:
            return
        try:
            with self.db.sessions.begin() as session:
                self.since = since = baselines(session, [s.name for s in self.active])
        except Exception:
            log.error("Beat could not read its schedules; it tries again.", exc_info=True)
            return
        for schedule in self.active:
            try:
                self.fire_due(schedule, since)
            except Exception:
                log.error("Beat could not fire schedule %s; it tries again.", schedule.name, exc_info=True)

    def fire_due(self, schedule: Schedule, since: dict[str, datetime]) -> None:
        """One schedule's due slots; its failure does not hold back the others."""
        for slot in due(schedule, since[schedule.name], self.clock(), self.window):
            with self.db.sessions.begin() as session:
                fire(session, self.db.settings, schedule, slot, self.identity)
            since[schedule.name] = slot.at  # fired, by this beat or another, or paused


def due(schedule: Schedule, baseline: datetime, now: datetime, window: timedelta) -> list[Slot]:
    """The slots after ``baseline`` up to ``now``: those older than ``window`` folded into one
    catch-up slot (run, or recorded as skipped), then each recent one."""
    cadence = schedule.cadence
    assert cadence is not None
    if cadence.latest(now) <= baseline:
        return []
    slots = []
    start = baseline
    if cadence.after(baseline) < now - window:
        start = cadence.latest(now - window)
        slots.append(_catch_up(schedule, baseline, start))
    slots += [Slot(at, SCHEDULED) for at in _slots(cadence.after, start, now)]
    return slots[:MAX_SLOTS_PER_TICK]


def _catch_up(schedule: Schedule, baseline: datetime, newest: datetime) -> Slot:
    if schedule.entry.catch_up == "run-once":
        return Slot(newest, CATCH_UP)
    missed = f"slots after {baseline:%Y-%m-%d %H:%M:%S} up to {newest:%Y-%m-%d %H:%M:%S} UTC"
    return Slot(newest, CATCH_UP, skipped=f"no beat ran for the {missed} (catch-up policy: skip).")


def _slots(after: Callable[[datetime], datetime], start: datetime, now: datetime) -> Iterator[datetime]:
    slot = after(start)
    while slot <= now:
        yield slot
        slot = after(slot)


def serve(db: Database) -> None:
    """Run until SIGINT or SIGTERM."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    Beat(db).run(stop)
