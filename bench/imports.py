"""The ``import`` job against ``psql \\copy`` on the same CSV and database; see bench/README.md.

In one run, on a generated, seeded CSV of ``--rows`` (default 1,000,000, ~70 MB: bigint key,
text, numeric, timestamptz, boolean): ``psql -c "\\copy ..."`` into an empty table (the anchor),
then the ``import`` job (an ``insert`` profile, every value checked against its column) from
``file://`` and from SeaweedFS ``s3://``, each into an empty table of the same shape, on a real
worker of the redis backend (PostgreSQL platform database, one pool process, one job at a time);
then an ``upsert`` re-run with 1 % of the rows' amounts changed; then ``\\copy`` and the job
again on ``--big-rows`` (default 5,000,000), to show the worker's memory does not grow with the
file. It prints rows/s, the pool process's peak RSS, CPU by side, and verdicts against the
issue's targets. It exits 0 unless something broke.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/imports.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

from bench.harness import load_average, print_log_tails  # noqa: E402
from bench.imports_parts import (  # noqa: E402
    Measure,
    Servers,
    Worker,
    check_insert,
    check_upsert,
    copy_anchor,
    create_table,
    postmaster_pid,
    save_profile,
    unique,
    write_csvs,
)
from bench.ocr_measure import print_sharing  # noqa: E402
from tests.s3_server import S3Server  # noqa: E402
from tests.support import Backend  # noqa: E402

SPEED_TARGET = 0.8
RSS_TARGET_MB = 200
WARM_UP_ROWS = 1000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the main file")
    parser.add_argument("--big-rows", type=int, default=5_000_000, help="rows of the big file; 0 skips it")
    parser.add_argument("--quick", action="store_true", help="100,000 and 300,000 rows: a check")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds any one job may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (CSVs, logs)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows = 100_000, 300_000
    if args.rows < CHANGED_MIN or args.big_rows < 0:
        parser.error(f"--rows must be >= {CHANGED_MIN}, --big-rows >= 0")
    return args


CHANGED_MIN = 100  # so that 1 % is at least one row


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-imports-"))
    (root / "seaweedfs").mkdir()
    (root / "data").mkdir()
    server = S3Server(root / "seaweedfs")
    print(f"{args.rows:,} rows, then {args.big_rows:,}; {os.cpu_count()} CPUs; data in {root}")
    print(f"load average {load_average()}", flush=True)
    try:
        server.start()
        rows, notes = run(args, root, server)
    except KeyboardInterrupt:
        print("\nInterrupted; cleaning up.", flush=True)
        return 130
    except Exception as exc:
        print(f"\nThe benchmark broke: {type(exc).__name__}: {exc}", flush=True)
        print_log_tails(root / "backend", lines=60)
        return 1
    finally:
        server.stop()
        if args.keep:
            print(f"\nKept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows, notes)
    print_verdicts(rows)
    return 0


def make_files(args: argparse.Namespace, data: Path) -> dict[str, Path]:
    files = {"main": data / "main.csv", "changed": data / "changed.csv", "warm": data / "warm.csv"}
    write_csvs(files["warm"], WARM_UP_ROWS)
    size = write_csvs(files["main"], args.rows, files["changed"])
    print(f"main file {size / 1e6:.1f} MB", flush=True)
    if args.big_rows:
        files["big"] = data / "big.csv"
        print(f"big file {write_csvs(files['big'], args.big_rows) / 1e6:.1f} MB", flush=True)
    return files


def run(args: argparse.Namespace, root: Path, server: S3Server) -> tuple[list[Measure], list[str]]:
    files = make_files(args, root / "data")
    bucket = server.new_bucket()
    client = server.client()
    for key in ("main", "warm"):  # not timed: the job reads it back
        client.upload_file(str(files[key]), bucket, f"{key}.csv")
    overrides = {**server.env, "CONVEYOR_FILE_ROOTS": str(root / "data")}
    backend = Backend.create("redis", root / "backend", overrides)
    assert server.process is not None
    servers = Servers([pid for pid in (postmaster_pid(), server.process.pid) if pid])
    worker = Worker(backend, servers, args.timeout)
    try:
        worker.start()
        warm_s = worker.warm_up(
            [
                {"profile": insert_into(backend, "warm_file"), "url": f"file://{files['warm']}"},
                {"profile": insert_into(backend, "warm_s3"), "url": f"s3://{bucket}/warm.csv"},
            ]
        )
        notes = [f"Warm-up (two {WARM_UP_ROWS}-row imports, not tabled): {warm_s:.1f} s;"
                 f" pool RSS after it {worker.baseline_mb:.0f} MB."]  # fmt: skip
        rows = phases(args, backend, servers, worker, files, bucket)
        notes.append(f"Load average at the end: {load_average()}.")
    finally:
        worker.stop()
        backend.stop()
    return rows, notes


def insert_into(backend: Backend, prefix: str) -> str:
    return save_profile(backend, create_table(backend, unique(prefix)), "insert")


def phases(
    args: argparse.Namespace,
    backend: Backend,
    servers: Servers,
    worker: Worker,
    files: dict[str, Path],
    bucket: str,
) -> list[Measure]:
    """The anchor first, then the job from each place, each into an empty table; the upsert
    re-runs into the file:// row's table, which holds the original rows."""
    n = args.rows
    rows = [step(copy_anchor(backend, servers, files["main"], create_table(backend, unique("copy")), n))]
    file_table = create_table(backend, unique("job_file"))
    payload: dict[str, Any] = {
        "profile": save_profile(backend, file_table, "insert"),
        "url": f"file://{files['main']}",
    }
    rows.append(step(worker.run(f"import job, file://, {n:,} rows", payload, n)))
    check_insert(backend, rows[-1], file_table)
    s3_table = create_table(backend, unique("job_s3"))
    payload = {"profile": save_profile(backend, s3_table, "insert"), "url": f"s3://{bucket}/main.csv"}
    rows.append(step(worker.run(f"import job, s3://, {n:,} rows", payload, n)))
    check_insert(backend, rows[-1], s3_table)
    payload = {"profile": save_profile(backend, file_table, "upsert"), "url": f"file://{files['changed']}"}
    rows.append(step(worker.run(f"upsert re-run, 1 % changed, file://, {n:,} rows", payload, n)))
    check_upsert(backend, rows[-1], file_table)
    if big := args.big_rows:
        rows.append(
            step(copy_anchor(backend, servers, files["big"], create_table(backend, unique("copy_big")), big))
        )
        big_table = create_table(backend, unique("job_big"))
        payload = {"profile": save_profile(backend, big_table, "insert"), "url": f"file://{files['big']}"}
        rows.append(step(worker.run(f"import job, file://, {big:,} rows", payload, big)))
        check_insert(backend, rows[-1], big_table)
    return rows


def step(row: Measure) -> Measure:
    print(
        f"{row.name}: {row.seconds:.1f} s, {row.rows_per_s:,.0f} rows/s; load average {load_average()}",
        flush=True,
    )
    return row


def anchor_for(rows: list[Measure], row: Measure) -> Measure | None:
    return next((r for r in rows if r.name.startswith("psql") and r.rows == row.rows), None)


def print_table(rows: list[Measure], notes: list[str]) -> None:
    print(
        "\n| run | rows | wall s | job's duration_s | rows/s | x psql \\copy | inserted / updated / unchanged"
        " | pool peak MB | client CPU s | servers' CPU s | others' CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        anchor = anchor_for(rows, row)
        ratio = f"{row.rows_per_s / anchor.rows_per_s:.2f}" if anchor and anchor is not row else "-"
        counts = (
            "/".join(str(row.result[k]) for k in ("inserted", "updated", "unchanged")) if row.result else "-"
        )
        print(
            f"| {row.name} | {row.rows:,} | {row.seconds:.1f} | {fmt(row.job_s, '.1f')} | {row.rows_per_s:,.0f}"
            f" | {ratio} | {counts} | {fmt(row.pool_mb, '.0f')} | {row.cpu.own_s - row.servers_s:.1f}"
            f" | {row.servers_s:.1f} | {row.cpu.others_s:.1f} |"
        )
    print(
        "\nwall s: psql from fork to exit; a job from just before its submission to its finished_at"
        " (relay and broker hand-off included); job's duration_s is the handler's own. x psql \\copy"
        " divides rows/s by the \\copy of the same file. pool peak MB (10^6 bytes): the worker's"
        " pool process's VmHWM, reset through clear_refs before the job and sampled every 0.1 s, so"
        " the job's peak with the process's baseline in it. client CPU s: psql, or the worker, its"
        " pool process and the relay, and this script; servers' CPU s: every PostgreSQL process"
        " (anyone's queries too) and SeaweedFS; others' CPU s: the rest of the machine's busy time"
        " (kernel threads writing the tables and WAL to disk count there too)."
    )
    for note in notes:
        print(note)


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_verdicts(rows: list[Measure]) -> None:
    print("\nTargets:")
    for row in (r for r in rows if r.name.startswith("import job")):
        anchor = anchor_for(rows, row)
        if anchor is not None:
            speed = row.rows_per_s / anchor.rows_per_s
            print(
                f"  {row.name}: {speed:.2f}x psql \\copy rows/s, >= {SPEED_TARGET}x: {verdict(speed >= SPEED_TARGET)}"
            )
    for row in (r for r in rows if r.pool_mb is not None):
        assert row.pool_mb is not None
        met = verdict(0 < row.pool_mb < RSS_TARGET_MB)
        print(f"  {row.name}: worker pool peak RSS {row.pool_mb:.0f} MB, < {RSS_TARGET_MB} MB: {met}")
    for row in (r for r in rows if r.name.startswith("upsert")):
        result = row.result
        print(
            f"  {row.name} (reported): {row.rows_per_s:,.0f} rows/s, inserted {result['inserted']},"
            f" updated {result['updated']}, unchanged {result['unchanged']}, bad {result['bad']}"
        )
    print_sharing(rows)


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
