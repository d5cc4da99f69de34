"""The pieces of bench/imports.py: the seeded CSV files, the target tables, the ``psql \\copy``
anchor, and the ``import`` job on a real worker (one pool process) with its peak RSS and CPU."""

from __future__ import annotations

import random
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.ocr_measure import MB, CpuShare, PeakSampler, machine_busy_s, reaped_cpu_s, tree_cpu_s
from jobs.imports import profiles
from jobs.imports.targets import target_database
from jobs.models import Job, JobState
from tests.support import Backend, child_pids, stop_process, submit_and_publish, wait_until

SEED = 14
SCHEMA = "imports"
TABLE = (
    "CREATE TABLE {name} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric,"
    " at timestamptz, active boolean)"
)
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "bigint"},
    {"name": "name", "type": "text", "required": True, "max_length": 40},
    {"name": "amount", "type": "numeric"},
    {"name": "at", "type": "timestamptz"},
    {"name": "active", "type": "boolean"},
]
HEADER = "id,name,amount,at,active\n"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
CHANGED_EVERY = 100  # 1 % of the rows get a new amount in the upsert's file
FINISHED = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


class BenchBroken(RuntimeError):
    """A phase could not give a figure (psql failed, a job did not succeed, a count is wrong)."""


@dataclass
class Measure:
    """One row of the table."""

    name: str
    rows: int
    seconds: float
    cpu: CpuShare
    servers_s: float
    job_s: float | None = None
    pool_mb: float | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def write_csvs(path: Path, rows: int, changed: Path | None = None) -> int:
    """``rows`` rows with shuffled keys (so the primary key is built out of order, as real data
    is), seeded so every run loads the same bytes; ``changed`` gets the same rows with every
    100th one's amount moved. Returns the file's size."""
    rng = random.Random(SEED + rows)
    keys = list(range(1, rows + 1))
    rng.shuffle(keys)
    with open(path, "w") as out, open(changed or "/dev/null", "w") as other:
        out.write(HEADER)
        other.write(HEADER)
        for index, key in enumerate(keys):
            name = "".join(rng.choices(LETTERS, k=rng.randint(12, 28)))
            cents, when = rng.randrange(10**8), 1_600_000_000 + rng.randrange(10**8)
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
            active = "true" if rng.random() < 0.5 else "false"
            out.write(f"{key},{name},{cents // 100}.{cents % 100:02d},{at},{active}\n")
            if changed is not None:
                cents += 1 if index % CHANGED_EVERY == 0 else 0
                other.write(f"{key},{name},{cents // 100}.{cents % 100:02d},{at},{active}\n")
    return path.stat().st_size


def create_table(backend: Backend, name: str) -> str:
    """In a schema of its own: the platform's own schema is no import target."""
    with psycopg.connect(target_database(backend.settings, "platform").url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        connection.execute(TABLE.format(name=f"{SCHEMA}.{name}"))
    return f"{SCHEMA}.{name}"


def count(backend: Backend, table: str, where: str = "true") -> int:
    with psycopg.connect(target_database(backend.settings, "platform").url) as connection:
        found = connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
    return int(found[0]) if found else 0


def save_profile(backend: Backend, table: str, mode: str) -> str:
    schema, _, bare = table.partition(".")
    name = f"bench-{bare.replace('_', '-')}-{mode}"
    definition = profiles.load_definition(
        {"schema": schema, "table": bare, "columns": COLUMNS, "keys": ["id"], "mode": mode}
    )
    with backend.sessions.begin() as session:
        profiles.save(session, backend.settings, name, definition, "bench")
    return name


def postmaster_pid() -> int | None:
    """The PostgreSQL server's first process (its parent is not a postgres): its tree's CPU,
    with the backends it has reaped, is the server's share of a phase."""
    for proc in Path("/proc").glob("[0-9]*"):
        with suppress(OSError, IndexError):
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            if Path(f"/proc/{parent}/comm").read_text().strip() != "postgres":
                return int(proc.name)
    return None


@dataclass
class Servers:
    """The CPU of PostgreSQL (every backend, ours and anyone else's) and of SeaweedFS."""

    pids: list[int]

    def cpu_s(self) -> float:
        return tree_cpu_s(*self.pids) if self.pids else 0.0


def copy_anchor(backend: Backend, servers: Servers, csv: Path, table: str, rows: int) -> Measure:
    """``psql -c "\\copy ..."`` into an empty table of the same shape, fork to exit."""
    url = target_database(backend.settings, "platform").url
    command = f"\\copy {table} FROM '{csv}' WITH (FORMAT csv, HEADER true)"
    busy, own, server, started = machine_busy_s(), reaped_cpu_s(), servers.cpu_s(), time.monotonic()
    done = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-c", command], capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    server_s = servers.cpu_s() - server
    cpu = CpuShare(machine_busy_s() - busy, reaped_cpu_s() - own + server_s)
    if done.returncode != 0:
        raise BenchBroken(f"psql \\copy exited {done.returncode}: {done.stderr[-500:]}")
    if (loaded := count(backend, table)) != rows:
        raise BenchBroken(f"psql \\copy left {loaded} rows in {table}, not {rows}")
    return Measure(f"psql \\copy, {rows:,} rows", rows, seconds, cpu, server_s)


@dataclass
class Worker:
    """``celery worker -c 1`` and the relay: the one pool process runs every job, one at a time."""

    backend: Backend
    servers: Servers
    timeout: float
    process: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    child: int = 0
    baseline_mb: float = 0.0

    def start(self) -> Worker:
        self.relay = self.backend.start_relay()
        self.process = self.backend.start_worker(concurrency=1)
        self.child = wait_until(self.only_child, 120, "the worker's pool process")
        return self

    def stop(self) -> None:
        for process in (self.process, self.relay):
            if process is not None:
                stop_process(process)

    def only_child(self) -> int:
        assert self.process is not None
        if self.process.poll() is not None:
            raise BenchBroken(f"the worker exited {self.process.returncode}")
        children = child_pids(self.process.pid)
        return children[0] if len(children) == 1 else 0

    def own_cpu_s(self) -> float:
        assert self.process is not None and self.relay is not None
        return tree_cpu_s(self.process.pid, self.relay.pid) + reaped_cpu_s()

    def warm_up(self, payloads: list[dict[str, Any]]) -> float:
        """Small imports first (not tabled): imports, the boto3 client, the connections."""
        started = time.monotonic()
        for payload in payloads:
            self.finish(submit_and_publish(self.backend, "import", payload))
        self.baseline_mb = (status_kib(self.child, "VmRSS") or 0) * 1024 / MB
        return time.monotonic() - started

    def finish(self, job_id: str) -> Job:
        try:
            job = self.backend.wait_for_job(job_id, *FINISHED, timeout=self.timeout)
        except AssertionError as exc:
            raise BenchBroken(f"{exc} (state {self.backend.job(job_id).state})") from None
        if job.state != JobState.SUCCEEDED:
            raise BenchBroken(f"import job {job_id} ended {job.state}: {job.error_type}: {job.error_message}")
        return job

    def run(self, name: str, payload: dict[str, Any], rows: int) -> Measure:
        """One job, submission to ``finished_at``. The pool process's peak RSS is reset first
        (clear_refs), then its VmHWM sampled every 0.1 s: the figure is this job's, baseline in."""
        Path(f"/proc/{self.child}/clear_refs").write_text("5")
        busy, own, server = machine_busy_s(), self.own_cpu_s(), self.servers.cpu_s()
        started = time.time()
        assert self.process is not None
        with PeakSampler(self.process.pid) as sampler:
            job = self.finish(submit_and_publish(self.backend, "import", payload))
        assert job.finished_at is not None and job.result is not None
        seconds, server_s = job.finished_at.timestamp() - started, self.servers.cpu_s() - server
        cpu = CpuShare(machine_busy_s() - busy, self.own_cpu_s() - own + server_s)
        if self.only_child() != self.child:
            raise BenchBroken("the worker's pool process was replaced during the job")
        if job.attempts != 1:
            print(f"  (job {job.id} took {job.attempts} attempts: the time includes the retries)")
        result = job.result
        return Measure(name, rows, seconds, cpu, server_s, result["duration_s"], sampler.pool_peak_mb, result)


def status_kib(pid: int, key: str) -> int | None:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def check_insert(backend: Backend, row: Measure, table: str) -> None:
    """Every row in, none bad: a fast wrong import is no figure."""
    got = (row.result.get("rows_read"), row.result.get("inserted"), row.result.get("bad"))
    loaded = count(backend, table)
    if got != (row.rows, row.rows, 0) or loaded != row.rows:
        raise BenchBroken(
            f"{row.name}: rows_read, inserted, bad {got}; {loaded} rows in {table}, not {row.rows}"
        )


def check_upsert(backend: Backend, row: Measure, table: str) -> None:
    """Every 100th row's amount changed, the rest untouched, nothing new."""
    changed = len(range(0, row.rows, CHANGED_EVERY))
    want = (row.rows, 0, changed, row.rows - changed, 0)
    keys = ("rows_read", "inserted", "updated", "unchanged", "bad")
    got = tuple(row.result.get(key) for key in keys)
    if got != want or count(backend, table) != row.rows:
        raise BenchBroken(f"{row.name}: {dict(zip(keys, got, strict=True))}, expected {want}")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"
