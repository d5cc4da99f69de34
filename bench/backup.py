"""The ``backup`` and ``restore-drill`` jobs against pg_dump and pg_restore, and the
idempotency-key purge under API load; see bench/README.md.

In one run, on the PostgreSQL at 127.0.0.1:5432: a pgbench database (``--scale``, default 60: about
1 GB) is dumped by ``pg_dump -Fc`` and ``pg_dump | gzip`` and restored by ``pg_restore --jobs 2``;
then a real worker runs the ``backup`` job into ``file://`` and into ``s3://`` (a SeaweedFS it
starts) and a ``restore-drill`` of each backup. It prints the backup wall time against pg_dump's,
the verification apart, the peak RSS of the pool process that ran each job, and the drill's RTO
against pg_restore's. Last, with a million expired idempotency keys in the platform's database,
``POST /v1/jobs`` latency without and during a ``purge-idempotency-keys`` job. It exits 0 unless
something broke.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/backup.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

from bench.backup_parts import Run, backups_and_drills, database_part, platform  # noqa: E402
from bench.backup_phases import Databases  # noqa: E402
from bench.backup_purge import purge_part  # noqa: E402
from bench.backup_report import Results, print_verdicts  # noqa: E402
from bench.harness import load_average, print_log_tails  # noqa: E402
from tests.s3_server import S3Server  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, default=60, help="pgbench scale (60: about 1 GB)")
    parser.add_argument("--rounds", type=int, default=5, help="backups per storage, each after a pg_dump")
    parser.add_argument("--expired-keys", type=int, default=1_000_000, help="expired idempotency keys")
    parser.add_argument("--live-keys", type=int, default=10_000, help="live idempotency keys")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of POSTs without the purge")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds any one phase may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (dumps, logs)")
    args = parser.parse_args()
    if args.scale < 1 or args.rounds < 1 or args.expired_keys < 0 or args.live_keys < 0 or args.window <= 0:
        parser.error("--scale and --rounds must be >= 1, the key counts >= 0 and --window > 0")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-backup-"))
    (root / "seaweedfs").mkdir()
    run = Run(args, root, Databases(), S3Server(root / "seaweedfs"), Results(args.scale))
    print(f"pgbench scale {args.scale}; {os.cpu_count()} CPUs; load average {load_average()}; data in {root}")
    try:
        run_all(run)
    except KeyboardInterrupt:
        print("\nInterrupted; cleaning up.", flush=True)
        return 130
    except Exception as exc:
        run.results.failed("the benchmark broke", f"{type(exc).__name__}: {exc}")
        print_log_tails(root / "backend")
    finally:
        clean_up(run)
    run.results.notes.append(f"Load average at the end: {load_average()}.")
    print_verdicts(run.results)
    return 1 if run.results.failures else 0


def run_all(run: Run) -> None:
    database_part(run)
    with platform(run) as backend:
        backups_and_drills(run, backend)
        purge_part(run, backend)


def clean_up(run: Run) -> None:
    run.server.stop()
    run.databases.drop_all()
    if run.args.keep:
        print(f"\nKept {run.root}")
    else:
        shutil.rmtree(run.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
