"""What bench/s3_sync.py stands on: the data, one sync by rclone or by a Conveyor job, and a
check that the destination holds what the source does."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BenchError
from jobs.models import Job, JobState
from tests.s3_server import S3Server
from tests.support import Backend, child_pids, stop_process, submit_and_publish

RCLONE = "/usr/bin/rclone"
TRANSFERS = 8
RCLONE_MODES = {"rclone": (), "rclone --fast-list --checksum": ("--fast-list", "--checksum")}
CONVEYOR_MODES = {"Conveyor size-mtime": "size-mtime", "Conveyor checksum": "checksum"}
TOOLS = (*RCLONE_MODES, *CONVEYOR_MODES)
MB = 1_000_000
MIB = 1024 * 1024
# Far enough ahead that the copies uploaded seconds ago count as older than the changed files.
FUTURE_S = 5
WARM_UP_TIMEOUT_S = 120


@dataclass
class Measure:
    seconds: float
    rss_mb: float
    copied: int | None
    cpu_s: float
    job_s: float | None = None


def slug(tool: str) -> str:
    return re.sub("[^a-z0-9]+", "-", tool.lower()).strip("-")


def object_key(n: int) -> str:
    return f"d{n % 16:02d}/s{n // 16 % 4}/object-{n:05d}.bin"


def make_objects(folder: Path, count: int, size: int) -> None:
    """``count`` files of random bytes, each within 10 % of ``size``, in 16 x 4 sub-folders."""
    sizes = random.Random(7)
    for n in range(count):
        path = folder / object_key(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(sizes.randint(size * 9 // 10, size * 11 // 10)))


def write_big(path: Path, mib: int) -> None:
    """One file of ``mib`` MiB of random bytes, written a MiB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        for _ in range(mib):
            file.write(os.urandom(MIB))


def change_objects(folder: Path, count: int) -> list[str]:
    """Rewrite ``count`` files spread over the set: new bytes, same size, mtime a little ahead."""
    keys = sorted(local_listing(folder))
    chosen = keys[:: max(1, len(keys) // count)][:count]
    future = time.time() + FUTURE_S
    for key in chosen:
        path = folder / key
        path.write_bytes(os.urandom(path.stat().st_size))
        os.utime(path, (future, future))
    return chosen


def local_listing(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def check_copy(client: Any, bucket: str, prefix: str, folder: Path, changed: Iterable[str] = ()) -> None:
    """The prefix holds the folder's keys with their sizes, and the changed files' new bytes."""
    found: dict[str, int] = {}
    etags: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", ()):
            key = item["Key"][len(prefix) + 1 :]
            found[key], etags[key] = item["Size"], item["ETag"].strip('"')
    expected = local_listing(folder)
    if found != expected:
        missing = sorted(expected.keys() - found.keys())
        extra = sorted(found.keys() - expected.keys())
        resized = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
        raise BenchError(
            f"s3://{bucket}/{prefix} differs from {folder}: {len(missing)} missing {missing[:3]}, "
            f"{len(extra)} extra {extra[:3]}, {len(resized)} of another size {resized[:3]}"
        )
    stale = [key for key in changed if etags[key] != hashlib.md5((folder / key).read_bytes()).hexdigest()]
    if stale:
        raise BenchError(f"s3://{bucket}/{prefix} still holds the old bytes of {len(stale)}: {stale[:3]}")


def rclone_env(server: S3Server) -> dict[str, str]:
    """The remote ``s3remote:`` from variables alone. rclone 1.60 refuses to start while
    AWS_CA_BUNDLE is set ("unsupported transport"), so it is left out."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE" and not k.startswith("RCLONE_")}
    remote = {
        "TYPE": "s3",
        "PROVIDER": "SeaweedFS",
        "ENDPOINT": server.endpoint,
        "ACCESS_KEY_ID": server.env["AWS_ACCESS_KEY_ID"],
        "SECRET_ACCESS_KEY": server.env["AWS_SECRET_ACCESS_KEY"],
        "FORCE_PATH_STYLE": "true",
        "REGION": "us-east-1",
    }
    env.update({f"RCLONE_CONFIG_S3REMOTE_{name}": value for name, value in remote.items()})
    return env


# Linux keeps the peak RSS of the process that exec'd in the child's ru_maxrss, so a child
# started from this (large) process would report at least this process's peak. A small launcher
# starts rclone instead, and reports rclone's own wall time, peak and exit status.
LAUNCHER = """
import os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    cpu = usage.ru_utime + usage.ru_stime
    out.write(f"{time.monotonic() - started} {usage.ru_maxrss} {cpu} {os.waitstatus_to_exitcode(status)}")
"""


def run_rclone(
    server: S3Server, flags: tuple[str, ...], source: Path, destination: str, log: Path, timeout: float
) -> Measure:
    """``rclone sync``, timed from its fork to its reaping, whose rusage gives its peak RSS."""
    argv = [RCLONE, "--config", "/dev/null", "sync", str(source), f"s3remote:{destination}"]
    argv += ["--transfers", str(TRANSFERS), *flags, "--stats-one-line", "-v"]
    report = log.with_suffix(".rusage")
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *argv]
    with log.open("wb") as out:
        process = subprocess.Popen(
            launcher, env=rclone_env(server), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise BenchError(f"{' '.join(argv[3:])} timed out after {timeout:.0f} s") from None
    text = log.read_text(errors="replace")
    seconds, max_rss_kib, cpu, code = report.read_text().split() if report.exists() else ["0", "0", "0", "?"]
    if process.returncode != 0 or code != "0":
        raise BenchError(f"{' '.join(argv[3:])} exited {code}:\n{text[-1500:]}")
    return Measure(float(seconds), int(max_rss_kib) * 1024 / MB, text.count(": Copied ("), float(cpu))


def status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {field_name}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ConveyorWorker:
    """``celery worker -c 1`` warmed up with an echo job, then an s3-sync of one object (the
    first S3 job of a process builds its boto3 client): its one pool process runs every job."""

    backend: Backend
    warm_up: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    child: int = 0
    baseline_mb: float = 0.0
    warm_up_s: float = 0.0

    def start(self) -> ConveyorWorker:
        self.process = self.backend.start_worker(concurrency=1)
        finish(self.backend, submit_and_publish(self.backend, "echo", {"warm": True}), WARM_UP_TIMEOUT_S)
        self.child = self.only_child()
        payload = {**self.warm_up, "destination": f"{self.warm_up['destination']}/{self.child}"}
        self.warm_up_s = self.run(payload, WARM_UP_TIMEOUT_S).seconds
        self.baseline_mb = status_kib(self.child, "VmRSS") * 1024 / MB
        return self

    def only_child(self) -> int:
        assert self.process is not None
        children = child_pids(self.process.pid)
        if len(children) != 1:
            raise BenchError(f"worker {self.process.pid} has pool processes {children}, not one")
        return children[0]

    def run(self, payload: dict[str, Any], timeout: float) -> Measure:
        """One s3-sync job, timed from submission to its ``finished_at``. The pool process's
        peak RSS is reset first (clear_refs), so VmHWM is this job's high-water mark."""
        Path(f"/proc/{self.child}/clear_refs").write_text("5")
        cpu = cpu_seconds(self.child)
        started = time.time()
        job = finish(self.backend, submit_and_publish(self.backend, "s3-sync", payload), timeout)
        if self.only_child() != self.child:
            raise BenchError("the worker's pool process was replaced during the job")
        assert job.finished_at is not None and job.result is not None
        if job.attempts != 1:
            print(f"    (job {job.id} took {job.attempts} attempts: the time includes the retries)")
        peak = status_kib(self.child, "VmHWM") * 1024 / MB
        seconds, copied = job.finished_at.timestamp() - started, job.result["copied"]
        return Measure(seconds, peak, copied, cpu_seconds(self.child) - cpu, job.result["duration_s"])

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def finish(backend: Backend, job_id: str, timeout: float) -> Job:
    try:
        job = backend.wait_for_job(
            job_id, JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED, timeout=timeout
        )
    except AssertionError as exc:
        raise BenchError(f"{exc} (state {backend.job(job_id).state})") from None
    if job.state != JobState.SUCCEEDED:
        raise BenchError(f"job {job_id} ({job.type}) ended {job.state}: {job.error_message}")
    return job


@dataclass
class Tools:
    """Every tool and mode against one bucket; each sync is timed, measured and checked."""

    server: S3Server
    bucket: str
    logs: Path
    worker: ConveyorWorker
    notes: list[str] = field(default_factory=list)

    def fresh_worker(self, why: str) -> None:
        self.worker.stop()
        self.worker = ConveyorWorker(self.worker.backend, self.worker.warm_up).start()
        self.note_worker(why)

    def note_worker(self, why: str) -> None:
        self.notes.append(
            f"Worker pool process {why}: {self.worker.baseline_mb:.0f} MB RSS after warm-up; its "
            f"warm-up s3-sync of one object took {self.worker.warm_up_s:.2f} s (not in the table)."
        )

    def sync(self, tool: str, folder: Path, prefix: str, timeout: float, label: str) -> Measure:
        destination = f"{self.bucket}/{prefix}"
        if tool in RCLONE_MODES:
            log = self.logs / f"rclone-{label}-{slug(tool)}.log"
            return run_rclone(self.server, RCLONE_MODES[tool], folder, destination, log, timeout)
        return self.worker.run(sync_payload(folder, destination, CONVEYOR_MODES[tool]), timeout)


def sync_payload(folder: Path, destination: str, compare: str) -> dict[str, Any]:
    return {
        "source": f"file://{folder}",
        "destination": f"s3://{destination}",
        "compare": compare,
        "transfers": TRANSFERS,
    }
