"""The parts of bench/backup.py, in the order they run; each records its figures in ``Results``
and prints its table, and a failed step is recorded and the run goes on where it can."""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.backup_load import Window
from bench.backup_phases import (
    Anchors,
    Databases,
    count_rows,
    database_size,
    generate,
    scalar,
    server_major,
)
from bench.backup_report import (
    COUNT,
    FC_ALONE,
    FC_BESIDE,
    GZIP,
    Anchor,
    Backed,
    Results,
    fmt,
    print_backups,
    print_database,
    print_restores,
)
from bench.backup_worker import BackupWorker, JobRun, cancel
from bench.harness import BenchError, load_average
from jobs.models import Backup, RestoreDrill
from tests.s3_server import S3Server
from tests.support import Backend

TARGET, WARM_UP_TARGET = "bench", "warmup"


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
    dump = anchor_dump(run, anchors, FC_ALONE)
    try:
        step(GZIP)
        seconds, path = anchors.dump_gzip(run.target_url)
        results.anchors[GZIP] = [done(Anchor(seconds, path.stat().st_size))]
    except BenchError as exc:
        results.failed(GZIP, exc)
    step(COUNT)
    results.anchors[COUNT] = [done(Anchor(count_rows(run.target_url), 0))]
    if dump is not None:
        anchor_restore(run, anchors, dump)
        dump.unlink()


def anchor_dump(run: Run, anchors: Anchors, label: str) -> Path | None:
    step("pg_dump -Fc -f")
    try:
        seconds, path = anchors.dump_custom(run.target_url, f"custom-{len(run.results.anchors)}")
    except BenchError as exc:
        run.results.failed(label, exc)
        return None
    run.results.anchors.setdefault(label, []).append(done(Anchor(seconds, path.stat().st_size)))
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
        # The production default: the tests' 50 ms makes the relay take a tenth of a core.
        "CONVEYOR_RELAY_INTERVAL_MS": "200",
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
    """3 and 4: each storage gets a fresh worker, which backs up ``--rounds`` times, each right
    after a pg_dump -Fc, then drills the last backup (each backup's retention deletes the one
    before: they are of the same day)."""
    urls = {"file://": f"file://{run.root / 'backups'}", "s3://": f"s3://{run.bucket}/backups"}
    anchors = Anchors(server_major(), run.root / "anchors", run.args.timeout)
    for storage, url in urls.items():
        print(f"\n3-4. {storage} (load average {load_average()})")
        warm_up = (("backup", {"target": WARM_UP_TARGET}),)
        worker = fresh_worker(run, backend, {"CONVEYOR_BACKUP_URL": url}, warm_up)
        run.results.notes.append(
            f"Worker for {storage}: pool process {worker.child}, {worker.baseline_mb:.0f} MB RSS after its "
            f"warm-up (an empty purge, then a backup of an empty database: {worker.warm_up_s:.2f} s, not tabled)."
        )
        print(f"  {run.results.notes[-1]}")
        for _ in range(run.args.rounds):
            backup_round(run, backend, anchors, storage)
        drill = job(run, backend, "restore-drill", f"restore-drill of the last backup on {storage}")
        if drill is not None:
            run.results.drills[storage] = drill
            run.results.drill_rows[storage] = row_of(backend, RestoreDrill, drill)
    print_backups(run.results)
    print_restores(run.results)


def backup_round(run: Run, backend: Backend, anchors: Anchors, storage: str) -> None:
    """pg_dump -Fc, then the job, back to back: the two see the same machine."""
    dump = anchor_dump(run, anchors, FC_BESIDE)
    anchor_s = None
    if dump is not None:
        dump.unlink()
        anchor_s = run.results.anchors[FC_BESIDE][-1].seconds
    backup = job(run, backend, "backup", f"backup on {storage}")
    if backup is not None:
        backed = Backed(backup, row_of(backend, Backup, backup), anchor_s)
        run.results.backups.setdefault(storage, []).append(backed)
        print(
            f"    manifest duration_s {fmt(backed.wall_s)} s, verify_s {fmt(backup.result.get('verify_s'))} s"
        )


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


def step(label: str) -> None:
    print(f"  {label} ...", end=" ", flush=True)


def done(value: Any) -> Any:
    if isinstance(value, Anchor):
        print(f"{value.seconds:.2f} s, {value.size / 1e6:.1f} MB", flush=True)
    elif isinstance(value, Window):
        print(f"{len(value.samples)} accepted, {value.failed} refused", flush=True)
    return value
