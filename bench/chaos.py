"""Chaos run: every job must end where it should while workers are killed and the broker restarts.

On a fresh database and a private broker vhost (RabbitMQ) or database (Redis), two Celery workers
and the relay run a mix of jobs: ``echo`` (60 %), ``fail`` once then succeed (15 %), ``fail``
permanently (10 %, dead letters), ``sleep`` 200-1500 ms (14.5 %) and ``sleep`` 25 s (0.5 %,
three times the run's visibility timeout, so their messages come back while they run). While
they run, a worker is killed with SIGKILL (its whole process group: main process, pool and the
messages it had reserved) and replaced, the broker is restarted, and another worker is killed. Then it waits until no job is queued, running or retrying, and prints the count
equation, stuck jobs, outcomes per kind, dead-letter indexing and the errors in the process logs.

It exits 1 if the equation does not hold, a job is stuck, a job ended other than expected, or a
dead job does not have exactly one dead letter. Logs stay in the printed data folder.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/chaos.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

from bench.broker_faults import cut_redis_clients, restart_rabbitmq  # noqa: E402
from bench.broker_state import print_broker_state  # noqa: E402
from bench.chaos_report import (  # noqa: E402
    KINDS,
    Run,
    active_summary,
    count_jobs,
    print_log_errors,
    report,
    wait_for_dead_letters,
    wait_for_drain,
)
from jobs import service  # noqa: E402
from jobs.models import Job  # noqa: E402
from jobs.relay.outbox import publish_due  # noqa: E402
from jobs.relay.publisher import Publisher  # noqa: E402
from tests.services import PG_ADMIN_URL, missing_services  # noqa: E402
from tests.support import Backend  # noqa: E402

LONG_JOB_MS = 25_000
OVERRIDES = {
    "CONVEYOR_TASK_TIME_LIMIT_S": "60",
    # Long jobs last three times this; a killed worker's reserved messages come back after it.
    "CONVEYOR_VISIBILITY_TIMEOUT_S": "8",
    "CONVEYOR_LEASE_S": "10",
    "CONVEYOR_RETRY_BACKOFF_MS": "200",
    "CONVEYOR_RETRY_BACKOFF_MAX_MS": "2000",
    # Above the run's backlog (about 100 s), so only messages really lost are sent again.
    "CONVEYOR_REPUBLISH_AFTER_S": "120",
}
SUBMIT_BATCH = 100
READY_TIMEOUT_S = 60
CHAOS_TIMEOUT_S = 600


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    hostname: str
    log: Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to submit")
    parser.add_argument("--broker", choices=("rabbitmq", "redis", "embedded"), default="rabbitmq")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds from the first submission for the jobs to drain"
    )
    parser.add_argument("--gap", type=float, default=5, help="seconds between chaos events")
    parser.add_argument("--seed", type=int, default=1, help="seed of the job mix")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    missing = missing_services(args.broker)
    if missing:
        print(f"Cannot run on {args.broker}: {', '.join(missing)} not answering on 127.0.0.1.")
        return 2
    began = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix=f"conveyor-chaos-{args.broker}-"))
    print(f"Chaos run on {args.broker}: {args.jobs} jobs, logs in {data_dir}", flush=True)
    backend = Backend.create(args.broker, data_dir, OVERRIDES)
    try:
        return run(backend, args, began)
    finally:
        clean_up(backend)


def run(backend: Backend, args: argparse.Namespace, began: float) -> int:
    workers = [start_worker(backend, n) for n in (1, 2)]
    backend.start_relay()
    for worker in workers:
        wait_until_ready(worker)
    print(f"Setup: database, broker, 2 workers and the relay in {time.monotonic() - began:.1f} s.")
    kinds = plan(args.jobs, random.Random(args.seed))
    run_log = Run()
    chaos = Chaos(backend, workers, run_log, args.gap)
    chaos.start()
    try:
        submitted = submit_all(backend, kinds, run_log)
    except BaseException:
        chaos.cancel.set()  # so it starts no worker after clean-up has stopped them all
        raise
    finally:
        chaos.join()
    drained = wait_for_drain(backend, run_log, args.timeout)
    run_log.note("no job queued, running or retrying" if drained else "timed out waiting for jobs")
    wait_for_dead_letters(backend, run_log)
    print(f"\nElapsed: {time.monotonic() - began:.1f} s in all.")
    ok = report(backend, submitted) and chaos.error is None
    print_broker_state(backend)
    print_log_errors(backend.settings.data_dir)
    print("\nRESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def start_worker(backend: Backend, number: int) -> Worker:
    hostname = f"chaos{number}-{uuid.uuid4().hex[:4]}@{socket.gethostname()}"
    process = backend.start_worker(concurrency=2, name=hostname)
    log = backend.settings.data_dir / f"-m-{len(backend.processes) - 1}.log"
    return Worker(process, hostname, log)


def wait_until_ready(worker: Worker) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.log.exists() and b" ready." in worker.log.read_bytes():
            return
        if worker.process.poll() is not None:
            raise RuntimeError(f"Worker {worker.hostname} exited; see {worker.log}.")
        time.sleep(0.2)
    raise RuntimeError(f"Worker {worker.hostname} was not ready after {READY_TIMEOUT_S} s; see {worker.log}.")


def plan(jobs: int, rng: random.Random) -> list[str]:
    """The kinds in a shuffled order, in exact proportions (the remainder is echo)."""
    counts = {kind: int(jobs * share) for kind, (share, _, _) in KINDS.items()}
    counts["echo"] += jobs - sum(counts.values())
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    rng.shuffle(kinds)
    return kinds


def submission(kind: str, rng: random.Random) -> service.Submission:
    # The kind rides in correlation_id, so outcomes can be grouped by it in SQL.
    tag = f"chaos:{kind}"
    if kind == "fail_once":
        return service.Submission("fail", {"times": 1}, max_attempts=3, correlation_id=tag)
    if kind == "fail_permanent":
        return service.Submission("fail", {"permanent": True}, correlation_id=tag)
    if kind == "sleep":
        return service.Submission("sleep", {"ms": rng.randint(200, 1500)}, correlation_id=tag)
    if kind == "long":
        return service.Submission("sleep", {"ms": LONG_JOB_MS}, correlation_id=tag)
    return service.Submission("echo", {"n": rng.randint(0, 10**6)}, correlation_id=tag)


def submit_all(backend: Backend, kinds: list[str], run_log: Run) -> int:
    """Save jobs in batches and publish each batch after its commit; the relay takes what fails."""
    rng = random.Random(len(kinds))
    publisher = Publisher(backend.settings)
    published = left = 0
    try:
        for start in range(0, len(kinds), SUBMIT_BATCH):
            with backend.sessions.begin() as session:
                batch = kinds[start : start + SUBMIT_BATCH]
                ids = [service.submit(session, backend.settings, submission(k, rng)).id for k in batch]
            try:
                published += publish_due(backend.sessions, publisher, job_ids=ids, limit=len(ids))
            except Exception as exc:
                left += len(ids)
                print(f"  publishing a batch failed ({exc}); the relay will publish it.")
    finally:
        publisher.close()
    took = run_log.at()
    rate = len(kinds) / took if took else 0
    run_log.note(
        f"submitted {len(kinds)} jobs in {took:.1f} s ({rate:.0f}/s); published {published} "
        f"directly, {len(kinds) - published - left} by the relay first, {left} left to the relay"
    )
    return len(kinds)


class Chaos(threading.Thread):
    """Kill a worker, restart the broker, kill a worker, ``gap`` seconds apart, from submission on."""

    def __init__(self, backend: Backend, workers: list[Worker], run_log: Run, gap: float):
        super().__init__(name="chaos", daemon=True)
        self.backend, self.workers, self.run_log, self.gap = backend, workers, run_log, gap
        self.error: BaseException | None = None
        self.cancel = threading.Event()

    def run(self) -> None:
        try:
            for event in (kill_worker, restart_broker, kill_worker):
                if self.cancel.wait(self.gap):
                    return
                event(self.backend, self.workers, self.run_log)
        except BaseException as exc:
            self.error = exc
            self.run_log.note(f"chaos stopped early: {exc!r}")

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout or CHAOS_TIMEOUT_S)
        if self.is_alive():
            raise RuntimeError(f"Chaos events did not finish in {CHAOS_TIMEOUT_S} s.")


def kill_worker(backend: Backend, workers: list[Worker], run_log: Run) -> None:
    """SIGKILL the oldest worker's process group (main process and pool), then start another."""
    victim = workers.pop(0)
    running = count_jobs(backend, Job.state == "running", Job.worker == victim.hostname)
    os.killpg(victim.process.pid, signal.SIGKILL)
    victim.process.wait(10)
    run_log.note(f"killed worker {victim.hostname} (pid {victim.process.pid}) with {running} jobs running")
    replacement = start_worker(backend, len(backend.processes))
    workers.append(replacement)
    wait_until_ready(replacement)
    run_log.note(f"replacement worker {replacement.hostname} is ready; {active_summary(backend)}")


def restart_broker(backend: Backend, workers: list[Worker], run_log: Run) -> None:
    if backend.name == "rabbitmq":
        restart_rabbitmq(run_log)
    elif backend.name == "redis":
        cut_redis_clients(backend.settings.broker_url, run_log)
    else:
        run_log.note("broker restart skipped: the embedded broker is a folder")
        return
    run_log.note(f"broker is back; {active_summary(backend)}")


def clean_up(backend: Backend) -> None:
    """Stop our processes, delete the vhost (Backend.stop), drop the database, empty Redis."""
    backend.stop()
    url = backend.settings.broker_url
    if url.startswith("redis"):
        redis.Redis.from_url(url).flushdb()
    if backend.settings.database_url.startswith("postgresql"):
        name = backend.settings.database_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(
        f"Cleaned up: processes stopped, broker and database removed; logs kept in {backend.settings.data_dir}."
    )


if __name__ == "__main__":
    sys.exit(main())
