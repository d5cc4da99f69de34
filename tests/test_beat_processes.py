"""Two real ``conveyor beat`` processes on one database: one leads, each slot fires once, and the
other takes over when the leader is killed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from jobs.models import Job, ScheduleRun, utcnow
from tests.support import Backend, stop_process, wait_until

LOCK_INTERVAL_S = 1.0
SCHEDULE = "purge-idempotency-keys"


def runs(backend: Backend) -> list[ScheduleRun]:
    with backend.sessions() as session:
        found = select(ScheduleRun).where(ScheduleRun.schedule == SCHEDULE).order_by(ScheduleRun.slot)
        return list(session.scalars(found))


def pid_of(run: ScheduleRun) -> int:
    return int(run.fired_by.rsplit(":", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seconds"), [("redis", 30), ("embedded", 10)])
def test_two_beats_fire_each_slot_exactly_once_and_the_survivor_takes_over(
    own_backend: Callable[..., Backend], kind: str, seconds: int
) -> None:
    backend = own_backend(
        kind,
        CONVEYOR_SCHEDULE_PURGE_IDEMPOTENCY_KEYS="@every 1s",
        CONVEYOR_BEAT_LOCK_INTERVAL_S=str(LOCK_INTERVAL_S),
    )
    started = time.monotonic()
    beats = {beat.pid: beat for beat in (backend.spawn("-m", "jobs.cli", "beat") for _ in range(2))}
    leader = pid_of(wait_until(lambda: next(iter(runs(backend)), None), what="a first run"))
    time.sleep(seconds / 2)
    os.kill(leader, signal.SIGKILL)
    killed_at = utcnow()
    survivor = next(pid for pid in beats if pid != leader)

    def taken_over() -> ScheduleRun | None:
        return next((run for run in runs(backend) if pid_of(run) == survivor), None)

    first = wait_until(taken_over, timeout=10, what="the survivor's first run")
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    stopped_at = utcnow()
    stop_process(beats[survivor])

    fired = runs(backend)
    took = (first.fired_at - killed_at).total_seconds()
    print(f"{kind}: {len(fired)} slots over {seconds} s, the survivor's first {took:.2f} s after the kill")
    assert {pid_of(run) for run in fired if run.fired_at < killed_at} == {leader}
    assert first.fired_at - killed_at <= timedelta(seconds=2 * LOCK_INTERVAL_S)
    gaps = [later.slot - earlier.slot for earlier, later in pairwise(fired)]
    assert set(gaps) == {timedelta(seconds=1)}, "every slot fires, each exactly once"
    assert fired[-1].slot >= stopped_at - timedelta(seconds=3), "fires up to the stop"
    with backend.sessions() as session:
        causes = session.scalars(
            select(Job.causation_id).where(Job.correlation_id == f"schedule:{SCHEDULE}")
        ).all()
    assert sorted(cause or "" for cause in causes) == sorted(str(run.id) for run in fired if run.job_id)
    # No worker runs here: while the first job waits, each later slot is recorded as skipped.
    assert all(run.job_id or "is still queued" in (run.skipped or "") for run in fired)
