"""The ``s3-sync`` job against ``rclone sync``, folder to S3, on one SeaweedFS; see bench/README.md.

In one run, against one SeaweedFS S3 server on loopback: rclone (default size+modtime compare,
and ``--fast-list --checksum``) and Conveyor's ``s3-sync`` job run by a real worker (``compare``
``size-mtime`` and ``checksum``), 8 transfers each, sync a folder of 2,000 small objects into a
fresh prefix of their own: a first sync, a re-sync with nothing changed, and a re-sync after 1 % of
the objects changed; then one 1 GiB file. It prints wall time, peak RSS and objects copied per
phase and tool, each time against rclone's fastest mode, and whether the targets were met. Every
sync's destination is checked against its source. It exits 0 unless something broke.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/s3_sync.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

from bench.harness import load_average, print_log_tails  # noqa: E402
from bench.s3_sync_phases import (  # noqa: E402
    CONVEYOR_MODES,
    RCLONE,
    RCLONE_MODES,
    TOOLS,
    ConveyorWorker,
    Measure,
    Tools,
    change_objects,
    check_copy,
    make_objects,
    slug,
    sync_payload,
    write_big,
)
from tests.s3_server import S3Server  # noqa: E402
from tests.support import Backend  # noqa: E402

FIRST, NO_CHANGE, CHANGED = "first sync", "no-change re-sync", "1 % changed re-sync"
PHASE_TIMEOUT_S = 300
BIG_TIMEOUT_S = 600
DEFAULT_MODE = "Conveyor size-mtime"
RSS_TARGET_MB = 150
Row = tuple[str, str, Measure]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=2000, help="small objects in the folder")
    parser.add_argument("--object-bytes", type=int, default=6000, help="mean size of a small object")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file; 0 skips it")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, logs)")
    args = parser.parse_args()
    if args.objects < 1 or args.object_bytes < 10 or args.big_mib < 0:
        parser.error("--objects must be >= 1, --object-bytes >= 10, --big-mib >= 0")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-s3-sync-"))
    (root / "seaweedfs").mkdir()
    server = S3Server(root / "seaweedfs")
    print_setup(args, root)
    try:
        server.start()
        rows, notes = run(args, root, server)
    except Exception as exc:
        print(f"\nThe benchmark broke: {type(exc).__name__}: {exc}", flush=True)
        print_log_tails(root / "backend")
        return 1
    finally:
        server.stop()
        if args.keep:
            print(f"\nKept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows, notes)
    print_targets(rows)
    return 0


def print_setup(args: argparse.Namespace, root: Path) -> None:
    version = subprocess.run([RCLONE, "version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"{args.objects} objects of ~{args.object_bytes} B, then {args.big_mib} MiB in one file;")
    print(f"{version}; {os.cpu_count()} CPUs; load average {load_average()}; data in {root}", flush=True)


def run(args: argparse.Namespace, root: Path, server: S3Server) -> tuple[list[Row], list[str]]:
    data = root / "data"
    make_objects(data / "pristine", args.objects, args.object_bytes)
    make_objects(data / "warm-up", 1, args.object_bytes)
    bucket = server.new_bucket()
    warm_bucket(server, bucket)
    overrides = {**server.env, "CONVEYOR_FILE_ROOTS": str(data)}
    backend = Backend.create("embedded", root / "backend", overrides)
    try:
        backend.start_relay()
        warm_up = sync_payload(data / "warm-up", f"{bucket}/warm-up", "size-mtime")
        tools = Tools(server, bucket, root / "backend", ConveyorWorker(backend, warm_up).start())
        tools.note_worker("for the small phases")
        rows = small_phases(tools, data, max(1, args.objects // 100))
        if args.big_mib:
            rows += big_phases(tools, data, args.big_mib)
        tools.worker.stop()
        tools.notes.append(f"Load average at the end: {load_average()}.")
    finally:
        backend.stop()
    return rows, tools.notes


def warm_bucket(server: S3Server, bucket: str) -> None:
    """SeaweedFS makes a new bucket's volumes on its first writes, which would slow whichever
    tool came first; write some small objects and one in parts before any timing."""
    client = server.client()
    for n in range(16):
        client.put_object(Bucket=bucket, Key=f"warm-up/{n}", Body=os.urandom(6000))
    client.upload_fileobj(io.BytesIO(os.urandom(40 * 1024 * 1024)), bucket, "warm-up/big")


def small_phases(tools: Tools, data: Path, changes: int) -> list[Row]:
    """Each tool on its own copy of the folder and its own prefix; a phase runs for every tool
    before the next phase starts, so that a change in the machine's load hits all of them."""
    folders = {tool: data / slug(tool) for tool in TOOLS}
    for folder in folders.values():
        shutil.copytree(data / "pristine", folder, copy_function=shutil.copy2)
    rows: list[Row] = []
    for phase in (FIRST, NO_CHANGE, CHANGED):
        for tool, folder in folders.items():
            changed = change_objects(folder, changes) if phase == CHANGED else None
            rows.append(measured(tools, phase, tool, folder, f"small/{slug(tool)}", changed))
    return rows


def big_phases(tools: Tools, data: Path, mib: int) -> list[Row]:
    """The big file to a prefix per tool; each Conveyor mode on a fresh worker, so its peak is
    its own and not the small phases'."""
    folder = data / "big"
    write_big(folder / "big.bin", mib)
    phase = f"{mib // 1024} GiB first sync" if mib % 1024 == 0 else f"{mib} MiB first sync"
    rows: list[Row] = []
    for tool in TOOLS:
        if tool in CONVEYOR_MODES:
            tools.fresh_worker(f"started for the {phase} of {tool}")
        rows.append(measured(tools, phase, tool, folder, f"big/{slug(tool)}", timeout=BIG_TIMEOUT_S))
    return rows


def measured(
    tools: Tools,
    phase: str,
    tool: str,
    folder: Path,
    prefix: str,
    changed: list[str] | None = None,
    timeout: float = PHASE_TIMEOUT_S,
) -> Row:
    print(f"{phase}: {tool} ...", end=" ", flush=True)
    result = tools.sync(tool, folder, prefix, timeout, slug(phase))
    check_copy(tools.server.client(), tools.bucket, prefix, folder, changed or ())
    print(f"{result.seconds:.2f} s, {result.rss_mb:.0f} MB, {result.copied} copied; checked", flush=True)
    return phase, tool, result


def fastest_rclone(rows: list[Row], phase: str) -> float:
    return min(m.seconds for p, tool, m in rows if p == phase and tool in RCLONE_MODES)


def print_table(rows: list[Row], notes: list[str]) -> None:
    print(
        "\n| phase | tool / mode | wall s | peak RSS MB | objects copied | CPU s | in job s | x fastest rclone |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for phase, tool, m in rows:
        copied = "-" if m.copied is None else str(m.copied)
        job_s = "-" if m.job_s is None else f"{m.job_s:.2f}"
        ratio = m.seconds / fastest_rclone(rows, phase)
        print(
            f"| {phase} | {tool} | {m.seconds:.2f} | {m.rss_mb:.0f} | {copied} | {m.cpu_s:.2f} | {job_s} | {ratio:.2f} |"
        )
    print()
    for note in notes:
        print(f"- {note}")


def print_targets(rows: list[Row]) -> None:
    print("\nTargets:")
    for phase, limit in ((NO_CHANGE, 1.0), (FIRST, 1.2)):
        for tool in CONVEYOR_MODES:
            ratio = measure_of(rows, phase, tool).seconds / fastest_rclone(rows, phase)
            target = " (the target)" if tool == DEFAULT_MODE else " (for information)"
            print(
                f"  {phase}, {tool}{target}: {ratio:.2f}x rclone's fastest, <= {limit:.1f}x: {verdict(ratio, limit)}"
            )
    for phase, tool, m in rows:
        if phase not in (FIRST, NO_CHANGE, CHANGED) and tool in CONVEYOR_MODES:
            met = verdict(m.rss_mb, RSS_TARGET_MB, strict=True)
            print(f"  {phase}, {tool}: peak RSS {m.rss_mb:.0f} MB, < {RSS_TARGET_MB} MB: {met}")


def measure_of(rows: list[Row], phase: str, tool: str) -> Measure:
    return next(m for p, t, m in rows if p == phase and t == tool)


def verdict(value: float, limit: float, *, strict: bool = False) -> str:
    return (
        "met"
        if value < limit or (value == limit and not strict)
        else f"MISSED by {100 * (value / limit - 1):.0f} %"
    )


if __name__ == "__main__":
    sys.exit(main())
