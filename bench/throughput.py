"""Throughput of Conveyor against plain Celery on RabbitMQ and Redis; see bench/README.md.

For each broker, against a fresh PostgreSQL database: (a) a plain Celery app publishes no-op tasks
that a plain ``celery worker`` drains; (b) HTTP clients submit ``echo`` jobs to the API, which the
Conveyor worker runs; (c) the same worker drains jobs written and published in-process, which
separates the worker's cost from the API's. It prints submissions/s, end-to-end jobs/s and
latencies, where the CPU went, and whether the issue's targets were met. It always exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/throughput.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.clients import Submissions, submit_echo_jobs  # noqa: E402
from bench.cpu import CpuMeter, format_usage  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchError,
    api_answers,
    bench_backend,
    free_port,
    load_average,
    poll,
    profiling,
)
from bench.raw_app import NOOP_TASK, RAW_QUEUE, make_raw_app, raw_queue, read_timings  # noqa: E402
from bench.report import BrokerResults, Result, percentile, print_table, print_verdict  # noqa: E402
from jobs import service  # noqa: E402
from jobs.models import FINISHED_STATES, Job, JobState  # noqa: E402
from tests.support import Backend, stop_process  # noqa: E402

BROKER_URLS = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672//", "redis": "redis://127.0.0.1:6379/13"}
WARM_UP_JOBS = 16
WARM_UP = "bench-warm-up"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs (and raw tasks) per broker")
    parser.add_argument("--brokers", default="rabbitmq,redis", help="comma-separated: rabbitmq, redis")
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker pool size (both sides)")
    parser.add_argument("--client-procs", type=int, default=4, help="HTTP client processes")
    parser.add_argument("--client-threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a phase to drain")
    parser.add_argument("--rabbitmq-url", default=BROKER_URLS["rabbitmq"], help="a dedicated vhost is safer")
    parser.add_argument("--redis-url", default=BROKER_URLS["redis"], help="a database only the bench uses")
    parser.add_argument(
        "--profile", type=Path, help="write py-spy raw profiles of API, worker and relay here"
    )
    args = parser.parse_args()
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    unknown = set(args.brokers) - set(BROKER_URLS)
    if unknown:
        parser.error(f"unknown brokers {', '.join(sorted(unknown))}; choose from {', '.join(BROKER_URLS)}")
    args.broker_urls = {"rabbitmq": args.rabbitmq_url, "redis": args.redis_url}
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    print(f"{args.jobs} jobs per broker; worker -c {args.concurrency}; {args.api_workers} API workers;")
    print(f"clients: {args.client_procs} processes x {args.client_threads} threads; {os.cpu_count()} CPUs.")
    results: dict[str, BrokerResults] = {}
    for broker in args.brokers:
        results[broker] = run_broker(broker, args)
        print_table(broker, results[broker])
    print_verdict(results)
    return 0


def run_broker(broker: str, args: argparse.Namespace) -> BrokerResults:
    results = BrokerResults()
    try:
        with bench_backend(broker, args.broker_urls[broker]) as backend:
            phase(broker, "raw Celery baseline")
            results.raw = run_raw(backend, args)
            phase(broker, "Conveyor through the API")
            run_conveyor(backend, args, results)
    except Exception as exc:  # e.g. the broker restarted under us: keep what was measured, go on
        print(f"[{broker}] could not finish: {type(exc).__name__}: {exc}", flush=True)
    return results


def phase(broker: str, name: str) -> None:
    print(f"\n[{broker}] {name} (load average {load_average()})", flush=True)


def warm_up_raw(noop: Any, folder: Path, worker: subprocess.Popen[bytes]) -> None:
    """A first batch, so the measured run starts with every pool process up and connected."""
    warm_key = f"warm-{uuid.uuid4().hex}"
    for _ in range(WARM_UP_JOBS):
        noop.apply_async(args=[time.time(), warm_key])
    poll(
        lambda: len(read_timings(folder, warm_key)), WARM_UP_JOBS, 60, worker, "the raw worker", required=True
    )


def run_raw(backend: Backend, args: argparse.Namespace) -> Result:
    app = make_raw_app(backend.settings)
    with app.connection_for_write() as connection:
        raw_queue(backend.settings)(connection.default_channel).declare()
    worker = backend.spawn(
        "-m", "celery", "-A", "bench.raw_app", "worker", "-l", "INFO", "-P", "prefork",
        "-c", str(args.concurrency), "-Q", RAW_QUEUE, "-n", f"raw-{uuid.uuid4().hex[:6]}@%h",
        "--without-mingle", "--without-gossip",
    )  # fmt: skip
    folder = backend.settings.data_dir
    noop = app.tasks[NOOP_TASK]
    try:
        warm_up_raw(noop, folder, worker)
        run_key = f"raw-{uuid.uuid4().hex}"
        with CpuMeter({worker.pid: "raw Celery worker"}) as cpu:
            started = time.time()
            for _ in range(args.jobs):
                noop.apply_async(args=[time.time(), run_key])
            published = time.time()
            done = poll(
                lambda: len(read_timings(folder, run_key)), args.jobs, args.timeout, worker, "raw tasks"
            )
        print(format_usage(cpu.seconds_by_label(), time.time() - started, args.jobs))
        records = read_timings(folder, run_key)
    finally:
        stop_process(worker)
        app.close()
    latencies = [finish - publish for publish, finish in records]
    return Result(
        submissions_per_s=args.jobs / (published - started),
        jobs_per_s=done / (max(finish for _, finish in records) - started) if records else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        completed=done,
        expected=args.jobs,
    )


def run_conveyor(backend: Backend, args: argparse.Namespace, results: BrokerResults) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    api = backend.spawn("-m", "jobs.cli", "api", "--workers", str(args.api_workers), "--port", str(port))
    worker = backend.spawn(
        "-m", "jobs.cli", "worker", "-c", str(args.concurrency), "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
        "--without-mingle", "--without-gossip",
    )  # fmt: skip
    relay = backend.spawn("-m", "jobs.cli", "relay")
    labels = {api.pid: "API (gunicorn)", worker.pid: "Conveyor worker", relay.pid: "relay"}
    poll(lambda: api_answers(base_url), 1, 60, api, "the API to answer", required=True)
    token = backend.token("jobs:write", "jobs:read")
    warm_up = submit_echo_jobs(base_url, token, WARM_UP_JOBS, 1, 4, WARM_UP)
    if warm_up.failed:
        raise BenchError(f"the API refused warm-up jobs: {warm_up.sample_errors}")
    poll(lambda: finished_jobs(backend, WARM_UP), WARM_UP_JOBS, 60, worker, "warm-up jobs", required=True)
    run_id = f"bench-{uuid.uuid4().hex}"
    with (
        CpuMeter(labels) as cpu,
        profiling(args.profile, f"{backend.name}-api", api.pid) as stop_api_profile,
        profiling(args.profile, f"{backend.name}-worker", worker.pid),
        profiling(args.profile, f"{backend.name}-relay", relay.pid),
    ):
        submissions = submit_echo_jobs(
            base_url, token, args.jobs, args.client_procs, args.client_threads, run_id
        )
        stop_api_profile()
        done = poll(
            lambda: finished_jobs(backend, run_id), submissions.accepted, args.timeout, worker, "jobs"
        )
    print(format_usage(cpu.seconds_by_label(), time.time() - submissions.started, args.jobs))
    results.conveyor = conveyor_result(backend, run_id, submissions, done, args.jobs)
    phase(backend.name, "Conveyor, jobs written and published in-process (no HTTP)")
    results.direct = run_direct(backend, args, worker, labels)


def run_direct(
    backend: Backend, args: argparse.Namespace, worker: subprocess.Popen[bytes], labels: dict[int, str]
) -> Result:
    """The worker's share alone: one transaction writes every job, and the relay publishes them."""
    run_id = f"bench-direct-{uuid.uuid4().hex}"
    with CpuMeter(labels) as cpu:
        started = time.time()
        with backend.sessions.begin() as session:
            for n in range(args.jobs):
                submission = service.Submission(type="echo", payload={"n": n}, correlation_id=run_id)
                service.submit(session, backend.settings, submission)
        written = time.time()
        done = poll(lambda: finished_jobs(backend, run_id), args.jobs, args.timeout, worker, "jobs")
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
    )


def finished_jobs(backend: Backend, correlation_id: str) -> int:
    with backend.sessions() as session:
        statement = select(func.count()).where(
            Job.correlation_id == correlation_id, Job.state.in_(list(FINISHED_STATES))
        )
        return session.scalar(statement) or 0


if __name__ == "__main__":
    sys.exit(main())
