"""The parts of bench/backup.py, in the order they run; each records its figures in ``Results``
and prints its table, and a failed step is recorded and the run goes on where it can."""

from __future__ import annotations

import argparse
import io
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.backup_load import Load, Window, key_counts, seed_keys
from bench.backup_phases import Anchors, Databases, database_size, generate, scalar, server_major
from bench.backup_report import (
    FC_AFTER,
    FC_BEFORE,
    GZIP,
    Anchor,
    Purge,
    Results,
    print_backups,
    print_database,
    print_purge,
    print_restores,
)
from bench.backup_worker import BackupWorker, JobRun, cancel
from bench.harness import BenchError, api_answers, free_port, load_average, poll
from jobs import tokens
from jobs.models import Backup, RestoreDrill
from tests.s3_server import S3Server
from tests.support import Backend

TARGET, WARM_UP_TARGET = "bench", "warmup"
PURGE_BATCH = 5000
WARM_LOAD_S = 2.0


@dataclass
class Run:
    args: argparse.Namespace
    root: Path
    databases: Databases
    server: S3Server
    results: Results
    target_url: str = ""
    platform_url: str = ""
    bucket: str = ""
    worker: BackupWorker | None = None


def run_all(run: Run) -> None:
    database_part(run)
    with platform(run) as backend:
        backups_and_drills(run, backend)
        purge_part(run, backend)


def database_part(run: Run) -> None:
    """1 and 2: the pgbench database, and the anchors: dumps and a restore by the tools alone."""
    results, scale = run.results, run.args.scale
    run.target_url = run.databases.create("data")
    step(f"1. pgbench -i -s {scale}")
    results.generate_s = generate(run.target_url, scale, run.root / "pgbench.log", run.args.timeout)
    results.database_bytes = database_size(run.target_url)
    print(f"{results.generate_s:.1f} s, {results.database_bytes / 1e6:.0f} MB", flush=True)
    print_database(results)
    anchors = Anchors(server_major(), run.root / "anchors", run.args.timeout)
    anchors.folder.mkdir()
    print(f"\n2. Anchors with {anchors.pg_dump} (load average {load_average()})")
    dump = anchor_dump(run, anchors, FC_BEFORE)
    try:
        step(GZIP)
        seconds, path = anchors.dump_gzip(run.target_url)
        results.anchors[GZIP] = done(Anchor(seconds, path.stat().st_size))
    except BenchError as exc:
        results.failed(GZIP, exc)
    if dump is not None:
        anchor_restore(run, anchors, dump)
        dump.unlink()


def anchor_dump(run: Run, anchors: Anchors, label: str) -> Path | None:
    step(label)
    try:
        seconds, path = anchors.dump_custom(run.target_url, label.split("(")[1].split()[0])
    except BenchError as exc:
        run.results.failed(label, exc)
        return None
    run.results.anchors[label] = done(Anchor(seconds, path.stat().st_size))
    return path


def anchor_restore(run: Run, anchors: Anchors, dump: Path) -> None:
    """Into a fresh database, which is dropped at once: the drill creates its own."""
    step("pg_restore --jobs 2")
    into = run.databases.create("restore")
    try:
        run.results.restore_s = anchors.restore(dump, into)
        rows = scalar(into, "SELECT count(*) FROM pgbench_accounts")
        print(f"{run.results.restore_s:.2f} s; {rows} rows in pgbench_accounts", flush=True)
        if rows != run.args.scale * 100_000:
            run.results.failed(
                "pg_restore --jobs 2", f"{rows} accounts restored, not {run.args.scale * 100_000}"
            )
    except BenchError as exc:
        run.results.failed("pg_restore --jobs 2", exc)


@contextmanager
def platform(run: Run) -> Iterator[Backend]:
    """The platform on its own PostgreSQL database with the file-system broker and a relay;
    the drills restore into a scratch database of the run (CONVEYOR_RESTORE_DRILL_URL)."""
    run.server.start()
    run.bucket = run.server.new_bucket()
    warm_bucket(run.server, run.bucket)
    run.platform_url = run.databases.create("platform")
    warm_up_url = run.databases.create("warmup")
    overrides = {
        **run.server.env,
        "CONVEYOR_DATABASE_URL": run.platform_url,
        "CONVEYOR_BACKUP_TARGETS": f"{TARGET}={run.target_url};{WARM_UP_TARGET}={warm_up_url}",
        "CONVEYOR_RESTORE_DRILL_URL": run.databases.create("drill"),
    }
    backend = Backend.create("embedded", run.root / "backend", overrides)
    try:
        backend.start_relay()
        yield backend
    finally:
        if run.worker is not None:
            run.worker.stop()
        backend.stop()


def warm_bucket(server: S3Server, bucket: str) -> None:
    """SeaweedFS makes a new bucket's volumes on its first writes; make them before any timing."""
    client = server.client()
    for n in range(8):
        client.put_object(Bucket=bucket, Key=f"warm-up/{n}", Body=os.urandom(6000))
    client.upload_fileobj(io.BytesIO(os.urandom(40 * 1024 * 1024)), bucket, "warm-up/big")


def backups_and_drills(run: Run, backend: Backend) -> None:
    """3 and 4: each storage gets a fresh worker, which backs up, then drills that backup (the
    next backup's retention deletes this one: both are of the same day)."""
    urls = {"file://": f"file://{run.root / 'backups'}", "s3://": f"s3://{run.bucket}/backups"}
    for storage, url in urls.items():
        print(f"\n3-4. {storage} (load average {load_average()})")
        warm_up = (("backup", {"target": WARM_UP_TARGET}),)
        worker = fresh_worker(run, backend, {"CONVEYOR_BACKUP_URL": url}, warm_up)
        run.results.notes.append(
            f"Worker for {storage}: pool process {worker.child}, {worker.baseline_mb:.0f} MB RSS after its "
            f"warm-up (an empty purge, then a backup of an empty database: {worker.warm_up_s:.2f} s, not tabled)."
        )
        print(f"  {run.results.notes[-1]}")
        backup = job(run, backend, "backup", f"backup on {storage}")
        if backup is not None:
            run.results.backups[storage] = backup
            run.results.manifests[storage] = row_of(backend, Backup, backup)
        drill = job(run, backend, "restore-drill", f"restore-drill of the backup on {storage}")
        if drill is not None:
            run.results.drills[storage] = drill
            run.results.drill_rows[storage] = row_of(backend, RestoreDrill, drill)
    anchors = Anchors(server_major(), run.root / "anchors", run.args.timeout)
    dump = anchor_dump(run, anchors, FC_AFTER)
    if dump is not None:
        dump.unlink()
    print_backups(run.results)
    print_restores(run.results)


def fresh_worker(
    run: Run, backend: Backend, env: dict[str, str], warm_ups: tuple[tuple[str, dict[str, Any]], ...] = ()
) -> BackupWorker:
    if run.worker is not None:
        run.worker.stop()
    run.worker = None
    run.worker = BackupWorker(backend, env, warm_ups).start()
    return run.worker


def job(run: Run, backend: Backend, job_type: str, label: str) -> JobRun | None:
    """One job through the worker; a failure is printed and recorded, a timeout also cancels the
    job and stops the worker (the next part starts another)."""
    if run.worker is None:
        run.results.failed(label, "no worker (an earlier step broke it)")
        return None
    step(label)
    found = run.worker.run(job_type, {"target": TARGET}, run.args.timeout)
    if found.job is None:
        cancel(backend, found.job_id)
        run.worker.stop()
        run.worker = None
    if not found.ok:
        run.results.failed(label, found.error)
        return found
    print(f"{found.wall_s:.2f} s to finished_at; pool VmHWM {found.peak_mb:.0f} MB", flush=True)
    return found


def row_of(backend: Backend, model: Any, found: JobRun) -> dict[str, Any]:
    """The manifest or drill row the job wrote, found by its job id, as plain values."""
    if found.job is None:
        return {}
    with backend.sessions() as session:
        row = session.scalars(select(model).where(model.job_id == found.job.id)).first()
    if row is None:
        return {}
    return {column.key: getattr(row, column.key) for column in model.__table__.columns}


def purge_part(run: Run, backend: Backend) -> None:
    """5: the API under load, without then during a purge of a million expired keys."""
    print(f"\n5. The idempotency-key purge at load (load average {load_average()})")
    # The worker exists before the keys do: its warm-up is a purge, which must find nothing.
    worker = run.worker or fresh_worker(run, backend, {})
    base_url, token = start_api(backend)
    step(f"seeding {run.args.expired_keys} expired and {run.args.live_keys} live keys")
    token_id = token_id_of(backend, token)
    print(f"{seed_keys(run.platform_url, token_id, run.args.expired_keys, run.args.live_keys):.1f} s")
    load = Load(base_url, token, "warm-up")
    time.sleep(WARM_LOAD_S)  # a fixed window of load, not a wait for an outcome
    warm = load.stop()
    step(f"POSTs for {run.args.window:.0f} s without the purge")
    load = Load(base_url, token, "quiet")
    time.sleep(run.args.window)
    quiet = done(load.stop())
    step("POSTs while the purge runs")
    load = Load(base_url, token, "purge")
    purged = worker.run("purge-idempotency-keys", {"batch_size": PURGE_BATCH}, run.args.timeout)
    busy = done(load.stop())
    record_purge(run, (warm, quiet, busy), purged)


def record_purge(run: Run, windows: tuple[Window, Window, Window], purged: JobRun) -> None:
    _, quiet, busy = windows
    if not purged.ok or purged.job is None:
        run.results.failed("purge-idempotency-keys", purged.error)
    during = busy
    if purged.job is not None and purged.job.started_at and purged.job.finished_at:
        during = busy.between(purged.job.started_at.timestamp(), purged.job.finished_at.timestamp())
    accepted = sum(len(w.samples) for w in windows)
    seeded = (run.args.expired_keys, run.args.live_keys)
    counts = key_counts(run.platform_url)
    run.results.purge = Purge(quiet, during, purged, counts, run.args.live_keys + accepted, seeded)
    print_purge(run.results.purge)
    if counts["seeded live"] != run.args.live_keys:
        run.results.failed("the purge", "it deleted live keys")


def start_api(backend: Backend) -> tuple[str, str]:
    port = free_port()
    api = backend.spawn("-m", "jobs.cli", "api", "--workers", "2", "--port", str(port))
    base_url = f"http://127.0.0.1:{port}"
    poll(lambda: api_answers(base_url), 1, 60, api, "the API to answer", required=True)
    return base_url, backend.token("jobs:write", "jobs:read")


def token_id_of(backend: Backend, token: str) -> uuid.UUID:
    with backend.sessions() as session:
        found = tokens.authenticate(session, token)
    if found is None:
        raise BenchError("the token just made does not authenticate")
    return found.id


def step(label: str) -> None:
    print(f"  {label} ...", end=" ", flush=True)


def done(value: Any) -> Any:
    if isinstance(value, Anchor):
        print(f"{value.seconds:.2f} s, {value.size / 1e6:.1f} MB", flush=True)
    elif isinstance(value, Window):
        print(f"{len(value.samples)} accepted, {value.failed} refused", flush=True)
    return value
