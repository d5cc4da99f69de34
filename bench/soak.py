"""Soak: `leak` jobs through a worker with pool recycling on (the shipped defaults) and off.

Each run writes `--jobs` leak jobs of `--mb` MB in one transaction, lets the relay publish them
and one `conveyor worker -c C` drain them, and samples every pool process's resident memory
twice a second. It prints, per run: throughput, the peak RSS of any pool process and the RSS
over time, how many pool processes were replaced, and jobs lost (not succeeded) and duplicated
(run more than once); then what recycling costs in throughput. It exits 1 if a job was lost
or duplicated, else 0.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, so the repository root is not importable yet

from sqlalchemy import func, select  # noqa: E402

from bench.harness import BROKER_URLS, bench_backend, poll  # noqa: E402
from jobs import service  # noqa: E402
from jobs.models import FINISHED_STATES, Job, JobState  # noqa: E402
from tests.support import Backend, child_pids, stop_process  # noqa: E402

RECYCLING_OFF = {"CONVEYOR_WORKER_MAX_TASKS_PER_CHILD": "0", "CONVEYOR_WORKER_MAX_MEMORY_MB": "0"}
SAMPLE_S = 0.5
RUN_ID = "soak"
WARM_UP = "soak-warm-up"


@dataclass
class Samples:
    """Resident memory of each pool process seen, sampled from /proc while the run lasts."""

    peak_kb: dict[int, int] = field(default_factory=dict)
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since start, jobs finished, largest RSS of a live pool process in KB)"""

    def take(self, worker_pid: int, elapsed: float, finished: int) -> None:
        live = {pid: rss_kb(pid) for pid in child_pids(worker_pid)}
        for pid, kb in live.items():
            self.peak_kb[pid] = max(kb, self.peak_kb.get(pid, 0))
        if live:  # none for a moment while billiard replaces a process
            self.timeline.append((elapsed, finished, max(live.values())))


def rss_kb(pid: int) -> int:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Run:
    name: str
    jobs_per_s: float
    samples: Samples
    replaced: int
    lost: int
    duplicated: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000, help="leak jobs per run")
    parser.add_argument("--mb", type=int, default=1, help="MB each job keeps for good")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes")
    parser.add_argument("--broker", choices=sorted(BROKER_URLS), default="rabbitmq")
    parser.add_argument(
        "--broker-url", help="default: the broker's loopback URL (a dedicated vhost is safer)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    print(f"{args.jobs} leak jobs of {args.mb} MB a run, worker -c {args.concurrency}, {args.broker}")
    runs = [soak(args, "recycling on (defaults)", {}), soak(args, "recycling off", RECYCLING_OFF)]
    return 0 if report(runs) else 1


def soak(args: argparse.Namespace, name: str, worker_env: dict[str, str]) -> Run:
    print(f"\n[{name}]", flush=True)
    with bench_backend(args.broker, args.broker_url or BROKER_URLS[args.broker]) as backend:
        worker = backend.spawn(
            "-m", "jobs.cli", "worker", "--queues", "default", "-c", str(args.concurrency),
            "-n", f"soak-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", **worker_env,
        )  # fmt: skip
        relay = backend.spawn("-m", "jobs.cli", "relay")
        try:
            return drain(backend, args, name, worker)
        finally:
            for process in (worker, relay):
                stop_process(process)


def drain(backend: Backend, args: argparse.Namespace, name: str, worker: subprocess.Popen[bytes]) -> Run:
    samples, stop = Samples(), threading.Event()
    warm_up(backend, worker)
    with backend.sessions.begin() as session:
        for _ in range(args.jobs):
            service.submit(
                session, backend.settings, service.Submission("leak", {"mb": args.mb}, correlation_id=RUN_ID)
            )
    started = time.monotonic()

    def sample() -> None:
        while not stop.wait(SAMPLE_S):
            samples.take(worker.pid, time.monotonic() - started, finished(backend))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        poll(lambda: finished(backend), args.jobs, args.timeout, worker, "leak jobs")
    finally:
        stop.set()
        sampler.join()
    return outcome(backend, args, name, samples)


def warm_up(backend: Backend, worker: subprocess.Popen[bytes]) -> None:
    """One job through first, so the run starts with the worker consuming."""
    with backend.sessions.begin() as session:
        submission = service.Submission("leak", {"mb": 0}, correlation_id=WARM_UP)
        service.submit(session, backend.settings, submission)
    poll(lambda: finished(backend, WARM_UP), 1, 120, worker, "the warm-up job", required=True)


def finished(backend: Backend, correlation_id: str = RUN_ID) -> int:
    with backend.sessions() as session:
        done = Job.state.in_(list(FINISHED_STATES))
        statement = select(func.count()).where(Job.correlation_id == correlation_id, done)
        return session.scalar(statement) or 0


def outcome(backend: Backend, args: argparse.Namespace, name: str, samples: Samples) -> Run:
    with backend.sessions() as session:
        rows = session.execute(
            select(Job.state, Job.attempts, Job.dispatch, Job.started_at, Job.finished_at, Job.result).where(
                Job.correlation_id == RUN_ID
            )
        ).all()
    done = [row for row in rows if row.state == JobState.SUCCEEDED]
    span = (max(r.finished_at for r in done) - min(r.started_at for r in done)).total_seconds() if done else 0
    return Run(
        name=name,
        jobs_per_s=len(done) / span if span else 0.0,
        samples=samples,
        # Each job names the pool process it ran in: exact, where sampling misses short lives.
        replaced=max(0, len({row.result["pid"] for row in done}) - args.concurrency),
        lost=args.jobs - len(done),
        duplicated=sum(1 for row in done if row.attempts > 1 or row.dispatch > 1),
    )


def report(runs: list[Run]) -> bool:
    """Prints the table; whether no job was lost or duplicated."""
    print(
        f"\n{'run':26} {'jobs/s':>8} {'peak RSS of a pool process':>30} {'replaced':>9} {'lost':>5} {'dup':>5}"
    )
    for run in runs:
        print(
            f"{run.name:26} {run.jobs_per_s:>8.1f} {peaks(run.samples):>30} {run.replaced:>9} {run.lost:>5} {run.duplicated:>5}"
        )
    for run in runs:
        print(f"\n{run.name}: largest pool process RSS as the jobs finished")
        for elapsed, done, kb in thin(run.samples.timeline):
            print(f"  {elapsed:6.1f} s  {done:>6} jobs  {kb / 1024:>7.0f} MB")
    on, off = runs
    if off.jobs_per_s:
        print(f"\nRecycling's throughput: {on.jobs_per_s / off.jobs_per_s:.2f}x of without it.")
    sound = not any(r.lost or r.duplicated for r in runs)
    print("Lost and duplicated must be 0:", "ok" if sound else "MISSED")
    return sound


def peaks(samples: Samples) -> str:
    """Each sampled pool process's peak: the least, the median and the largest."""
    mb = sorted(kb / 1024 for kb in samples.peak_kb.values())
    return f"{mb[0]:.0f} / {statistics.median(mb):.0f} / {mb[-1]:.0f} MB" if mb else "-"


def thin(timeline: list[tuple[float, int, int]], rows: int = 10) -> list[tuple[float, int, int]]:
    step = max(1, len(timeline) // rows)
    return timeline[::step] + timeline[-1:] if timeline else []


if __name__ == "__main__":
    sys.exit(main())
