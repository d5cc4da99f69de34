"""Chaos run: every job must end where it should while workers are killed and the broker restarts.

On a fresh database and a private broker vhost (RabbitMQ) or database (Redis), two Celery workers
and the relay run a mix of jobs: ``echo`` (60 %), ``fail`` once then succeed (15 %), ``fail``
permanently (10 %, dead letters) and ``sleep`` 200-1500 ms (15 %). While they run, a worker is
killed with SIGKILL (its whole process group) and replaced, the broker is restarted, and another
worker is killed. Then it waits until no job is queued, running or retrying, and prints the count
equation, stuck jobs, outcomes per kind, dead-letter indexing and the errors in the process logs.

It exits 1 if the equation does not hold, a job is stuck, a job ended other than expected, or a
dead job does not have exactly one dead letter. Logs stay in the printed data folder.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/chaos.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from jobs import service  # noqa: E402
from jobs.broker.queues import QUEUES, dead_letter_queue_name  # noqa: E402
from jobs.models import DeadLetter, Job  # noqa: E402
from jobs.relay.outbox import publish_due  # noqa: E402
from jobs.relay.publisher import Publisher  # noqa: E402
from tests.services import PG_ADMIN_URL, missing_services  # noqa: E402
from tests.support import Backend  # noqa: E402

OVERRIDES = {
    "CONVEYOR_TASK_TIME_LIMIT_S": "20",
    "CONVEYOR_VISIBILITY_TIMEOUT_S": "30",
    "CONVEYOR_RETRY_BACKOFF_MS": "200",
    "CONVEYOR_RETRY_BACKOFF_MAX_MS": "2000",
    # Above the run's backlog (about 100 s), so only messages really lost are sent again.
    "CONVEYOR_REPUBLISH_AFTER_S": "120",
}
# kind: (share of the jobs, the state it must end in, dispatches it needs without chaos)
KINDS = {
    "echo": (0.60, "succeeded", 1),
    "fail_once": (0.15, "succeeded", 2),
    "fail_permanent": (0.10, "dead", 1),
    "sleep": (0.15, "succeeded", 1),
}
ACTIVE = ("queued", "running", "retrying")
SUBMIT_BATCH = 100
READY_TIMEOUT_S = 60
BROKER_OUTAGE_S = 3.0
DEAD_LETTER_WAIT_S = 60
SHOWN = 25
CHAOS_TIMEOUT_S = 600


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    hostname: str
    log: Path


@dataclass
class Run:
    """What happened, with times relative to the start of submission."""

    started: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)

    def at(self) -> float:
        return time.monotonic() - self.started

    def note(self, what: str) -> None:
        line = f"  t={self.at():6.1f} s  {what}"
        self.events.append(line)
        print(line, flush=True)


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


def restart_rabbitmq(run_log: Run) -> None:
    """Stop and start the shared RabbitMQ application: every connection drops for a few seconds."""
    run_log.note("rabbitmqctl stop_app")
    try:
        rabbitmqctl("stop_app")
        time.sleep(BROKER_OUTAGE_S)
    finally:
        run_log.note("rabbitmqctl start_app")
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")


def rabbitmqctl(command: str) -> None:
    done = subprocess.run(["rabbitmqctl", "-q", command], capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {command} failed: {done.stderr.strip()}")


def cut_redis_clients(broker_url: str, run_log: Run) -> None:
    """Kill every connection to our Redis database, again and again for a few seconds.

    Only connections that selected our database are killed, so other users of the shared Redis
    are left alone (CLIENT KILL TYPE normal and DEBUG SLEEP would hit them too).
    """
    db = broker_url.rsplit("/", 1)[1]
    admin = redis.Redis.from_url(broker_url.rsplit("/", 1)[0] + "/0")
    killed = 0
    deadline = time.monotonic() + BROKER_OUTAGE_S
    try:
        while time.monotonic() < deadline:
            for client in admin.client_list():
                if str(client.get("db")) == db:
                    killed += admin.client_kill_filter(_id=client["id"])
            time.sleep(0.1)
    finally:
        admin.close()
    run_log.note(f"killed {killed} Redis connections to db {db} over {BROKER_OUTAGE_S:.0f} s")


def count_jobs(backend: Backend, *where: object) -> int:
    with backend.sessions() as session:
        return session.scalar(select(func.count()).select_from(Job).where(*where)) or 0  # type: ignore[arg-type]


def state_counts(backend: Backend) -> Counter[str]:
    with backend.sessions() as session:
        return Counter(dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all()))


def active_summary(backend: Backend) -> str:
    counts = state_counts(backend)
    return ", ".join(f"{state} {counts[state]}" for state in (*ACTIVE, "succeeded", "dead"))


def redis_summary(backend: Backend) -> str:
    """Unacknowledged messages wait for kombu's restore sweep, which a held mutex blocks."""
    if backend.name != "redis":
        return ""
    client = redis.Redis.from_url(backend.settings.broker_url)
    try:
        return f"; redis unacked {client.hlen('unacked')}, unacked_mutex ttl {client.ttl('unacked_mutex')} s"
    finally:
        client.close()


def wait_for_drain(backend: Backend, run_log: Run, timeout: float) -> bool:
    """Poll until no job is queued, running or retrying, printing progress every 10 s."""
    next_print = run_log.at() + 10
    while run_log.at() < timeout:
        counts = state_counts(backend)
        if not any(counts[state] for state in ACTIVE):
            return True
        if run_log.at() >= next_print:
            run_log.note(active_summary(backend) + redis_summary(backend))
            next_print += 10
        time.sleep(0.5)
    return False


def dead_without_letter(backend: Backend) -> int:
    with backend.sessions() as session:
        lettered = select(DeadLetter.job_id).where(DeadLetter.job_id.is_not(None))
        statement = select(func.count()).select_from(Job).where(Job.state == "dead", Job.id.not_in(lettered))
        return session.scalar(statement) or 0


def wait_for_dead_letters(backend: Backend, run_log: Run) -> None:
    """The relay indexes dead letters after the job row says dead; give it a bounded while."""
    deadline = time.monotonic() + DEAD_LETTER_WAIT_S
    while (missing := dead_without_letter(backend)) and time.monotonic() < deadline:
        time.sleep(0.5)
    run_log.note(f"dead-letter indexing settled; {missing} dead jobs without a dead letter")


def report(backend: Backend, submitted: int) -> bool:
    counts = state_counts(backend)
    print("\nEvery job by state:", dict(sorted(counts.items())))
    ended = ("succeeded", "dead", "cancelled")
    equation = " + ".join(f"{state} {counts[state]}" for state in ended)
    holds = submitted == sum(counts[state] for state in ended) == sum(counts.values())
    print(f"Equation: submitted {submitted} = {equation}: {'holds' if holds else 'DOES NOT HOLD'}")
    stuck = print_stuck(backend)
    expected = print_outcomes(backend)
    letters = print_dead_letters(backend)
    print_redeliveries(backend)
    return holds and not stuck and expected and letters


def print_stuck(backend: Backend) -> int:
    with backend.sessions() as session:
        stuck = list(session.scalars(select(Job).where(Job.state.in_(ACTIVE)).order_by(Job.created_at)))
    print(f"Stuck in queued/running/retrying: {len(stuck)}")
    for job in stuck[:SHOWN]:
        print(
            f"  {job.id} {job.state} {job.correlation_id} attempts {job.attempts} deliveries "
            f"{job.deliveries} dispatch {job.dispatch} worker {job.worker} lease {job.lease_expires_at}"
        )
    if len(stuck) > SHOWN:
        print(f"  ... and {len(stuck) - SHOWN} more")
    return len(stuck)


def print_outcomes(backend: Backend) -> bool:
    with backend.sessions() as session:
        rows = session.execute(
            select(Job.correlation_id, Job.state, func.count()).group_by(Job.correlation_id, Job.state)
        ).all()
        by_kind: dict[str, Counter[str]] = {}
        for tag, state, count in rows:
            by_kind.setdefault(str(tag).removeprefix("chaos:"), Counter())[state] = count
        print("Outcomes by kind (expected state first):")
        for kind, (_, wanted, _) in KINDS.items():
            got = by_kind.get(kind, Counter())
            others = {s: c for s, c in got.items() if s != wanted}
            print(
                f"  {kind:15} {wanted} {got[wanted]} of {sum(got.values())}"
                + (f"; others {others}" if others else "")
            )
        wrong = [
            job
            for kind, (_, wanted, _) in KINDS.items()
            for job in session.scalars(
                select(Job).where(
                    Job.correlation_id == f"chaos:{kind}", Job.state != wanted, Job.state.not_in(ACTIVE)
                )
            )
        ]
    for job in wrong[:SHOWN]:
        print(
            f"  unexpected: {job.id} {job.correlation_id} is {job.state}: {job.error_type}: {job.error_message}"
        )
    return not wrong


def print_dead_letters(backend: Backend) -> bool:
    with backend.sessions() as session:
        total = session.scalar(select(func.count()).select_from(DeadLetter)) or 0
        reasons = dict(
            session.execute(select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason)).all()
        )
        per_job = Counter(
            dict(session.execute(select(DeadLetter.job_id, func.count()).group_by(DeadLetter.job_id)).all())
        )
        dead = set(session.scalars(select(Job.id).where(Job.state == "dead")))
    missing = [job_id for job_id in dead if per_job[job_id] == 0]
    several = [job_id for job_id in dead if per_job[job_id] > 1]
    stray = [job_id for job_id in per_job if job_id not in dead]
    print(f"Dead letters indexed: {total} (by reason {reasons}) for {len(dead)} dead jobs")
    print(
        f"  dead jobs with no dead letter {len(missing)}, with more than one {len(several)}; "
        f"dead letters of jobs that are not dead {len(stray)}"
    )
    for label, ids in (("no dead letter", missing), ("several", several), ("not dead", stray)):
        for job_id in ids[:5]:
            print(f"  {label}: job {job_id}")
    exactly_one = not missing and not several
    print(f"  every dead job has exactly one dead letter: {'yes' if exactly_one else 'NO'}")
    return exactly_one and not stray


def print_redeliveries(backend: Backend) -> None:
    """How the chaos shows in the rows: extra attempts (a killed run) and extra dispatches (a lease)."""
    with backend.sessions() as session:
        jobs = session.execute(select(Job.correlation_id, Job.attempts, Job.dispatch, Job.deliveries)).all()
    extra_runs = extra_dispatches = redelivered = 0
    for tag, attempts, dispatch, deliveries in jobs:
        planned = KINDS[str(tag).removeprefix("chaos:")][2]
        extra_runs += attempts > planned
        extra_dispatches += dispatch > planned
        redelivered += deliveries > 1
    print(
        f"Jobs run more often than planned {extra_runs}; sent again by lease recovery (dispatch above plan) "
        f"{extra_dispatches}; last attempt delivered more than once {redelivered}"
    )


def print_broker_state(backend: Backend) -> None:
    """Where the broker holds messages now: evidence for a stuck job or a missing dead letter."""
    print(f"\nBroker state ({backend.name}):")
    if backend.name == "rabbitmq":
        vhost = backend.settings.broker_url.rsplit("/", 1)[1]
        argv = ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_ready"]
        done = subprocess.run([*argv, "messages_unacknowledged"], capture_output=True, text=True, timeout=60)
        print("  " + (done.stdout or done.stderr).strip().replace("\n", "\n  "))
        argv = ["rabbitmqctl", "-q", "list_channels", "-p", vhost, "name", "consumer_count"]
        done = subprocess.run([*argv, "messages_unacknowledged"], capture_output=True, text=True, timeout=60)
        print("  " + (done.stdout or done.stderr).strip().replace("\n", "\n  "))
    elif backend.name == "redis":
        print_redis_state(backend)
    else:
        folder = backend.settings.broker_dir / "messages"
        print(f"  {len(list(folder.glob('*')))} message files in {folder}")


def print_redis_state(backend: Backend) -> None:
    client = redis.Redis.from_url(backend.settings.broker_url)
    try:
        lengths = {q: client.llen(q) for q in (*QUEUES, *(dead_letter_queue_name(q) for q in QUEUES))}
        print(f"  list lengths {lengths}")
        index: list[tuple[bytes, float]] = client.zrange("unacked_index", 0, -1, withscores=True)  # type: ignore[assignment]
        oldest = f"; oldest {time.time() - index[0][1]:.0f} s ago" if index else ""
        print(
            f"  unacked {client.hlen('unacked')}, unacked_index {len(index)}{oldest}; "
            f"unacked_mutex ttl {client.ttl('unacked_mutex')} s"
        )
        for tag, score in index[:SHOWN]:
            body = bytes(client.hget("unacked", tag) or b"")  # type: ignore[arg-type]
            task_id = re.search(rb'"id": "([^"]+)"', body)
            found = task_id.group(1).decode() if task_id else "?"
            print(f"  unacked since {time.time() - score:.0f} s: task {found} (tag {tag.decode()})")
    finally:
        client.close()


def log_lines(data_dir: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(data_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            yield path.name, line


NOTABLE: dict[str, Callable[[str], bool]] = {
    "ERROR/CRITICAL lines": lambda line: " ERROR " in line or " CRITICAL " in line,
    "tracebacks": lambda line: line.startswith("Traceback"),
    "lease recovery lines": lambda line: "Recovered " in line and "worker was lost" in line,
    "stale or finished copies skipped": lambda line: "Skipping job" in line,
    "tasks dead-lettered": lambda line: "was dead-lettered to" in line,
    "broker connection lost": lambda line: "Connection to broker lost" in line,
    "relay cannot publish": lambda line: "relay cannot publish" in line,
    "indexer cannot index": lambda line: "indexer cannot index" in line,
}


def print_log_errors(data_dir: Path) -> None:
    counts: Counter[str] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    for name, line in log_lines(data_dir):
        for label, matches in NOTABLE.items():
            counts[label] += matches(line)
        if NOTABLE["ERROR/CRITICAL lines"](line):
            # Drop the timestamp and ids so repeats of one message count together.
            message = " ".join(word for word in line.split()[2:] if not _looks_like_id(word))
            errors[(name, message[:200])] += 1
    print(f"\nProcess logs ({data_dir}):")
    for label in NOTABLE:
        print(f"  {label}: {counts[label]}")
    for (name, message), count in errors.most_common(10):
        print(f"  {count:5}x {name}: {message}")


def _looks_like_id(word: str) -> bool:
    return len(word.strip(".,:;()[]'\"")) >= 32 and "-" in word


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
