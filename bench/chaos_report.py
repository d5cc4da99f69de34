"""What the chaos run prints and checks once its jobs have drained: the count equation, stuck
jobs, each kind's outcome, dead-letter indexing, redeliveries, broker state and log errors."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import func, select

from jobs.models import DeadLetter, Job
from tests.support import Backend

# kind: (share of the jobs, the state it must end in, dispatches it needs without chaos)
KINDS = {
    "echo": (0.60, "succeeded", 1),
    "fail_once": (0.15, "succeeded", 2),
    "fail_permanent": (0.10, "dead", 1),
    "sleep": (0.145, "succeeded", 1),
    # Three times longer than the chaos run's visibility timeout: their messages come back while
    # they run, and the copies must be skipped.
    "long": (0.005, "succeeded", 1),
}
ACTIVE = ("queued", "running", "retrying")
DEAD_LETTER_WAIT_S = 60
SHOWN = 25


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


def log_lines(data_dir: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(data_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            yield path.name, line


NOTABLE: dict[str, Callable[[str], bool]] = {
    "ERROR/CRITICAL lines": lambda line: " ERROR " in line or " CRITICAL " in line,
    "tracebacks": lambda line: line.startswith("Traceback"),
    "lease recovery lines": lambda line: "Recovered " in line and "worker was lost" in line,
    "stale or finished copies skipped": lambda line: (
        "Skipping job" in line and " holds it until " not in line
    ),
    "copies of jobs under a live lease skipped": lambda line: " holds it until " in line,
    "outcome writes from a replaced claim refused": lambda line: "its claim is no longer current" in line,
    "leases released after a pool process died": lambda line: "lease" in line and "released" in line,
    "unacknowledged messages put back": lambda line: "never acknowledged" in line,
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
