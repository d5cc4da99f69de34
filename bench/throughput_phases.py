"""The phases of ``throughput.py``: each runs one row's jobs and returns its Result."""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from bench.clients import Submissions, submit_echo_jobs
from bench.cpu import CpuMeter, format_usage
from bench.harness import BenchError, api_answers, free_port, poll, profiling
from bench.raw_app import (
    DEFAULTS_QUEUE,
    NOOP_TASK,
    RAW_QUEUE,
    make_defaults_app,
    make_raw_app,
    raw_queue,
    read_timings,
)
from bench.report import Result, percentile
from jobs import service
from jobs.models import FINISHED_STATES, Job, JobState
from tests.support import Backend, stop_process

WARM_UP_JOBS = 16
WARM_UP = "bench-warm-up"


def run_raw(backend: Backend, args: argparse.Namespace, *, defaults: bool) -> Result:
    """Plain Celery: like for like with Conveyor's broker setup, or with Celery's defaults."""
    app = make_defaults_app(backend.settings) if defaults else make_raw_app(backend.settings)
    if not defaults:
        with app.connection_for_write() as connection:
            raw_queue(backend.settings)(connection.default_channel).declare()
    worker = backend.spawn(
        "-m", "celery", "-A", "bench.raw_app:defaults" if defaults else "bench.raw_app", "worker", "-l", "INFO",
        "-P", "prefork", "-c", str(args.concurrency), "-Q", DEFAULTS_QUEUE if defaults else RAW_QUEUE,
        "-n", f"raw-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip",
    )  # fmt: skip
    try:
        return _drain_raw(backend, args, app, worker)
    finally:
        stop_process(worker)
        app.close()


def _drain_raw(
    backend: Backend, args: argparse.Namespace, app: Any, worker: subprocess.Popen[bytes]
) -> Result:
    folder, noop = backend.settings.data_dir, app.tasks[NOOP_TASK]
    warm_key = f"warm-{uuid.uuid4().hex}"
    for _ in range(WARM_UP_JOBS):
        noop.apply_async(args=[time.time(), warm_key])
    poll(
        lambda: len(read_timings(folder, warm_key)), WARM_UP_JOBS, 60, worker, "the raw worker", required=True
    )
    run_key = f"raw-{uuid.uuid4().hex}"
    with CpuMeter({worker.pid: "raw Celery worker"}) as cpu:
        started = time.time()
        for _ in range(args.jobs):
            noop.apply_async(args=[time.time(), run_key])
        published = time.time()
        done = poll(lambda: len(read_timings(folder, run_key)), args.jobs, args.timeout, worker, "raw tasks")
    print(format_usage(cpu.seconds_by_label(), time.time() - started, args.jobs))
    records = read_timings(folder, run_key)
    latencies = [finish - publish for publish, finish in records]
    return Result(
        submissions_per_s=args.jobs / (published - started),
        jobs_per_s=done / (max(finish for _, finish in records) - started) if records else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        completed=done,
        expected=args.jobs,
    )


@dataclass
class Conveyor:
    base_url: str
    token: str
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    relay: subprocess.Popen[bytes]

    @property
    def labels(self) -> dict[int, str]:
        return {self.api.pid: "API (gunicorn)", self.worker.pid: "Conveyor worker", self.relay.pid: "relay"}


@contextmanager
def conveyor_processes(backend: Backend, args: argparse.Namespace) -> Iterator[Conveyor]:
    """API, worker and relay as in production, warmed up; stopped afterwards."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    api = backend.spawn("-m", "jobs.cli", "api", "--workers", str(args.api_workers), "--port", str(port))
    worker = backend.spawn(
        "-m", "jobs.cli", "worker", "-c", str(args.concurrency), "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
        "--without-mingle", "--without-gossip", CONVEYOR_TASK_EVENTS=args.task_events,
    )  # fmt: skip
    relay = backend.spawn("-m", "jobs.cli", "relay")
    try:
        poll(lambda: api_answers(base_url), 1, 60, api, "the API to answer", required=True)
        token = backend.token("jobs:write", "jobs:read")
        warm_up = submit_echo_jobs(base_url, token, WARM_UP_JOBS, 1, 4, WARM_UP)
        if warm_up.failed:
            raise BenchError(f"the API refused warm-up jobs: {warm_up.sample_errors}")
        poll(lambda: finished_jobs(backend, WARM_UP), WARM_UP_JOBS, 60, worker, "warm-up jobs", required=True)
        yield Conveyor(base_url, token, api, worker, relay)
    finally:
        for process in (api, worker, relay):
            stop_process(process)


def run_api(backend: Backend, args: argparse.Namespace, conveyor: Conveyor, batch: int, name: str) -> Result:
    """HTTP clients submit echo jobs, one a request or ``batch`` a request, while they run."""
    run_id = f"bench-{uuid.uuid4().hex}"
    procs, threads = (args.client_procs, args.client_threads) if batch == 1 else (2, 2)
    with (
        CpuMeter(conveyor.labels) as cpu,
        profiling(args.profile, f"{backend.name}-{name}-api", conveyor.api.pid) as stop_api_profile,
        profiling(args.profile, f"{backend.name}-{name}-worker", conveyor.worker.pid),
        profiling(args.profile, f"{backend.name}-{name}-relay", conveyor.relay.pid),
    ):
        submissions = submit_echo_jobs(
            conveyor.base_url, conveyor.token, args.jobs, procs, threads, run_id, batch
        )
        stop_api_profile()
        done = poll(
            lambda: finished_jobs(backend, run_id),
            submissions.accepted,
            args.timeout,
            conveyor.worker,
            "jobs",
        )
    print(format_usage(cpu.seconds_by_label(), time.time() - submissions.started, args.jobs))
    return conveyor_result(backend, run_id, submissions, done, args.jobs)


def run_direct(backend: Backend, args: argparse.Namespace, conveyor: Conveyor) -> Result:
    """The worker's share alone: one transaction writes every job, and the relay publishes them."""
    run_id = f"bench-direct-{uuid.uuid4().hex}"
    with CpuMeter(conveyor.labels) as cpu:
        started = time.time()
        with backend.sessions.begin() as session:
            for n in range(args.jobs):
                submission = service.Submission(type="echo", payload={"n": n}, correlation_id=run_id)
                service.submit(session, backend.settings, submission)
        written = time.time()
        done = poll(lambda: finished_jobs(backend, run_id), args.jobs, args.timeout, conveyor.worker, "jobs")
    print(format_usage(cpu.seconds_by_label(), time.time() - started, args.jobs))
    submissions = Submissions(started, written, accepted=args.jobs, failed=0)
    return conveyor_result(backend, run_id, submissions, done, args.jobs)


def conveyor_result(
    backend: Backend, run_id: str, submissions: Submissions, done: int, expected: int
) -> Result:
    if submissions.failed:
        print(f"  {submissions.failed} submissions failed, e.g. {submissions.sample_errors[:2]}")
    with backend.sessions() as session:
        rows = session.execute(
            select(Job.created_at, Job.finished_at, Job.state).where(Job.correlation_id == run_id)
        ).all()
    finished = [row for row in rows if row.finished_at is not None]
    latencies = [(row.finished_at - row.created_at).total_seconds() for row in finished]
    last = max((row.finished_at.timestamp() for row in finished), default=submissions.started)
    return Result(
        submissions_per_s=submissions.per_second,
        jobs_per_s=done / max(last - submissions.started, 1e-9),
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        completed=sum(1 for row in rows if row.state == JobState.SUCCEEDED),
        expected=expected,
        failed=submissions.failed + sum(1 for row in finished if row.state != JobState.SUCCEEDED),
        request_p99_ms=percentile(submissions.request_ms, 0.99) if submissions.request_ms else None,
    )


def finished_jobs(backend: Backend, correlation_id: str) -> int:
    with backend.sessions() as session:
        statement = select(func.count()).where(
            Job.correlation_id == correlation_id, Job.state.in_(list(FINISHED_STATES))
        )
        return session.scalar(statement) or 0
