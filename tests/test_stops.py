"""A stop longer than the grace period: the worker is killed mid-job (as Docker does after
`stop_grace_period`, or systemd after `TimeoutStopSec`), and the job runs again elsewhere once its
lease lapses, with one recorded outcome."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import wait_for_worker
from tests.support import Backend, submit_and_publish

pytestmark = pytest.mark.e2e
GRACE_S = 1.0


def test_a_worker_killed_past_its_grace_period_loses_no_job(own_backend: Callable[..., Backend]) -> None:
    backend = own_backend("rabbitmq", CONVEYOR_LEASE_S="5")
    first = backend.start_worker(concurrency=1)
    backend.start_relay()
    wait_for_worker(backend)
    job_id = submit_and_publish(backend, "sleep", {"ms": 6000})
    backend.wait_for_job(job_id, "running")

    os.kill(first.pid, signal.SIGTERM)  # a warm shutdown starts: it waits for the job...
    time.sleep(GRACE_S)
    assert first.poll() is None and b"celery" in Path(f"/proc/{first.pid}/cmdline").read_bytes()
    os.killpg(first.pid, signal.SIGKILL)  # ...past the grace period, the whole group is killed
    first.wait(10)
    backend.start_worker(concurrency=1)

    job = backend.wait_for_job(job_id, "succeeded", timeout=90)
    assert job.dispatch == 2 and job.attempts == 2


def test_a_stop_within_the_grace_period_finishes_the_running_job_first(
    own_backend: Callable[..., Backend],
) -> None:
    backend = own_backend("redis")
    worker = backend.start_worker(concurrency=1)
    wait_for_worker(backend)
    job_id = submit_and_publish(backend, "sleep", {"ms": 2000}, no_relay=True)
    backend.wait_for_job(job_id, "running")

    os.kill(worker.pid, signal.SIGTERM)  # what Docker, Kubernetes and KillMode=mixed send

    assert worker.wait(30) == 0
    job = backend.job(job_id)
    assert job.state == "succeeded" and (job.attempts, job.dispatch) == (1, 1)
