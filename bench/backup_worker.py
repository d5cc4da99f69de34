"""A real Conveyor worker for the backup benchmark, and one job run through it with the peak
memory of the pool process that ran it and of the tools that process started."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BenchError
from bench.s3_sync_phases import cpu_seconds, status_kib
from jobs import service
from jobs.errors import ConflictError
from jobs.models import FINISHED_STATES, Job, JobState
from tests.support import Backend, child_pids, stop_process, submit_and_publish

MB = 1_000_000
WARM_UP_TIMEOUT_S = 120
SAMPLE_S = 0.1


@dataclass
class JobRun:
    """A finished job (or one that did not finish in time: ``job`` None) and what it cost."""

    job: Job | None
    wall_s: float
    peak_mb: float
    sampled_mb: float
    tools_mb: dict[str, float]
    cpu_s: float
    job_id: str = ""
    baseline_mb: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.job is not None and self.job.state == JobState.SUCCEEDED

    @property
    def result(self) -> dict[str, Any]:
        return dict(self.job.result or {}) if self.job is not None else {}


@dataclass
class Sampler:
    """Samples the pool process's VmRSS and the VmHWM of each process it starts (pg_dump,
    pg_restore) every 0.1 s, in a thread: the tools exit before anyone could ask them."""

    pid: int
    rss_kib: int = 0
    tools_kib: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                self.rss_kib = max(self.rss_kib, status_kib(self.pid, "VmRSS"))
                self._sample_tools()
            except (OSError, BenchError):
                continue  # a process exited between the listing and the read

    def _sample_tools(self) -> None:
        for child in child_pids(self.pid):
            name = Path(f"/proc/{child}/comm").read_text().strip()
            self.tools_kib[name] = max(self.tools_kib.get(name, 0), status_kib(child, "VmHWM"))


@dataclass
class BackupWorker:
    """``conveyor worker --queues maintenance -c 1``, as a deployment would run its upkeep,
    warmed up with an empty purge; its one pool process runs every job."""

    backend: Backend
    env: dict[str, str]
    warm_ups: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Jobs run after the first, so the measured ones find their modules imported and their
    clients built, as in a worker that has run for a while."""
    process: subprocess.Popen[bytes] | None = None
    child: int = 0
    baseline_mb: float = 0.0
    warm_up_s: float = 0.0

    def start(self) -> BackupWorker:
        name = f"bench-backup-{uuid.uuid4().hex[:6]}@%h"
        argv = ("-m", "jobs.cli", "worker", "--queues", "maintenance", "-c", "1", "-n", name)
        self.process = self.backend.spawn(*argv, "--without-mingle", "--without-gossip", **self.env)
        first = ("purge-idempotency-keys", {"batch_size": 5000})
        for n, (job_type, payload) in enumerate((first, *self.warm_ups)):
            warm = self.run(job_type, payload, WARM_UP_TIMEOUT_S, first=n == 0)
            if not warm.ok:
                raise BenchError(f"the worker's warm-up {job_type} job failed: {warm.error}")
            self.warm_up_s += warm.wall_s
        self.baseline_mb = status_kib(self.child, "VmRSS") * 1024 / MB
        return self

    def only_child(self) -> int:
        assert self.process is not None
        if self.process.poll() is not None:
            raise BenchError(f"the worker exited with {self.process.returncode}")
        children = child_pids(self.process.pid)
        if len(children) != 1:
            raise BenchError(f"worker {self.process.pid} has pool processes {children}, not one")
        return children[0]

    def run(self, job_type: str, payload: dict[str, Any], timeout: float, *, first: bool = False) -> JobRun:
        """One job, timed from submission to its ``finished_at``. The pool process's peak RSS is
        reset first (clear_refs), so its VmHWM afterwards is this job's high-water mark."""
        if not first:
            Path(f"/proc/{self.child}/clear_refs").write_text("5")
        cpu = 0.0 if first else cpu_seconds(self.child)
        started = time.time()
        job_id = submit_and_publish(self.backend, job_type, payload)
        if first:
            self.child = wait_for_child(self)
        with Sampler(self.child) as sampler:
            job = wait_for_end(self.backend, job_id, timeout)
        if self.only_child() != self.child:
            raise BenchError("the worker's pool process was replaced during the job")
        found = measured(self, job, started, cpu, sampler, job_id)
        found.baseline_mb = self.baseline_mb
        return found

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def wait_for_child(worker: BackupWorker) -> int:
    """The pool process, once the worker has forked it (it does before it takes a message)."""
    deadline = time.monotonic() + WARM_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert worker.process is not None
        if worker.process.poll() is None and child_pids(worker.process.pid):
            return worker.only_child()
        time.sleep(0.1)
    return worker.only_child()


def measured(
    worker: BackupWorker, job: Job | None, started: float, cpu: float, sampler: Sampler, job_id: str
) -> JobRun:
    peak = status_kib(worker.child, "VmHWM") * 1024 / MB
    tools = {name: kib * 1024 / MB for name, kib in sampler.tools_kib.items()}
    used = cpu_seconds(worker.child) - cpu
    sampled = sampler.rss_kib * 1024 / MB
    if job is None:
        return JobRun(None, time.time() - started, peak, sampled, tools, used, job_id, error="timed out")
    assert job.finished_at is not None
    error = (
        None if job.state == JobState.SUCCEEDED else f"job {job_id} ended {job.state}: {job.error_message}"
    )
    if job.attempts != 1:
        print(f"    (job {job.id} took {job.attempts} attempts: its times include the retries)")
    wall = job.finished_at.timestamp() - started
    return JobRun(job, wall, peak, sampled, tools, used, job_id, error=error)


def wait_for_end(backend: Backend, job_id: str, timeout: float) -> Job | None:
    """The job once it is finished (in any state), or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = backend.job(job_id)
        if job.state in FINISHED_STATES:
            return job
        time.sleep(0.2)
    return None


def cancel(backend: Backend, job_id: str) -> None:
    """Ask a job that ran out of time to stop, so no later worker picks its message up again."""
    try:
        with backend.sessions.begin() as session:
            service.cancel(session, uuid.UUID(job_id), actor="bench")
    except ConflictError:
        pass  # it finished meanwhile
