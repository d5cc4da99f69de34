"""The ``ocr`` job against the ``tesseract`` CLI on the same pages and cores; see bench/README.md.

In one run: a document of ``--pages`` (default 40) dense A4 pages at 300 dpi, made with known
text, as an image-only PDF for the job and as PNGs for the CLI. The anchor is ``tesseract`` over
the PNGs with ``xargs -P <cores>`` (``OMP_THREAD_LIMIT=1``), writing ``txt tsv pdf`` as the job
does (the fair anchor), and ``txt`` alone; then the ``ocr`` job on a real worker of the embedded
backend with one pool process per core (prefetch 1, fanned out into ``ocr-pages`` children; the
pool processes run tesseract as a library, tesserocr), and again with one process, for the
scaling. It prints pages/s, the character error rate of the
whole document against the truth, the peak RSS of the pool processes and of tesseract, and
verdicts against the targets. It exits 0 unless something broke.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/ocr.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

from bench.harness import load_average, print_log_tails  # noqa: E402
from bench.ocr_measure import print_sharing, self_check  # noqa: E402
from bench.ocr_parts import Measure, cli_anchor, job_phase, make_document, versions  # noqa: E402
from tests.support import Backend  # noqa: E402

SPEED_TARGET = 0.95
CER_TARGET_PP = 0.5
RSS_TARGET_MB = 300
PRIMARY, TXT_ONLY = "txt tsv pdf", "txt"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=40, help="pages in the document")
    parser.add_argument("--quick", action="store_true", help="8 pages: a check that it all works")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="xargs -P and worker -c")
    parser.add_argument("--fanout", type=int, default=4, help="CONVEYOR_OCR_FANOUT_PAGES")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds any one job may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (pages, logs)")
    args = parser.parse_args()
    if args.quick:
        args.pages = 8
    if args.pages < 1 or args.processes < 1 or args.fanout < 1:
        parser.error("--pages, --processes and --fanout must be >= 1")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-ocr-"))
    print(f"{args.pages} pages, {args.processes} processes; {os.cpu_count()} CPUs; data in {root}")
    print(f"{versions()}; load average {load_average()}", flush=True)
    try:
        rows = run(args, root)
    except KeyboardInterrupt:
        print("\nInterrupted; cleaning up.", flush=True)
        return 130
    except Exception as exc:
        print(f"\nThe benchmark broke: {type(exc).__name__}: {exc}", flush=True)
        print_log_tails(root / "backend", lines=60)
        return 1
    finally:
        if args.keep:
            print(f"\nKept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    print_verdicts(rows, args.processes)
    return 0


def run(args: argparse.Namespace, root: Path) -> list[Measure]:
    """CLI and job alternate (full CLI, job on every core, CLI txt, job on one process, CLI on
    one process), so a change in the machine's load is less likely to fall on one side only."""
    self_check()
    document = make_document(root / "document", args.pages)
    overrides = {"CONVEYOR_WORKER_PREFETCH": "1", "CONVEYOR_OCR_FANOUT_PAGES": str(args.fanout)}
    backend = Backend.create("embedded", root / "backend", overrides)
    rows: list[Measure] = []
    try:
        n = args.processes
        rows.append(phase(lambda: cli_anchor(document, PRIMARY, n, root / "cli-full")))
        rows.append(phase(lambda: job_phase(backend, document, n, args.timeout)))
        rows.append(phase(lambda: cli_anchor(document, TXT_ONLY, n, root / "cli-txt")))
        if n > 1:
            rows.append(phase(lambda: job_phase(backend, document, 1, args.timeout)))
            rows.append(phase(lambda: cli_anchor(document, PRIMARY, 1, root / "cli-one")))
    finally:
        backend.stop()
    return rows


def phase(measure: Callable[[], Measure]) -> Measure:
    row = measure()
    print(
        f"{row.name}: {row.seconds:.1f} s, {row.pages_per_s:.3f} pages/s, CER {100 * row.cer:.2f} %;"
        f" load average {load_average()}",
        flush=True,
    )
    for note in row.notes:
        print(f"  {note}")
    return row


def find(rows: list[Measure], prefix: str, processes: int, mode: str = "") -> Measure | None:
    return next(
        (r for r in rows if r.name.startswith(prefix) and r.processes == processes and r.name.endswith(mode)),
        None,
    )


def print_table(rows: list[Measure]) -> None:
    print(
        "\n| run | processes | wall s | pages/s | x CLI txt tsv pdf (same -P) | CER % | CPU s | others' CPU s"
        " | pool peak MB | tesseract peak MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        same = find(rows, "tesseract", row.processes, PRIMARY)
        ratio = f"{row.pages_per_s / same.pages_per_s:.2f}" if same else "-"
        print(
            f"| {row.name} | {row.processes} | {row.seconds:.1f} | {row.pages_per_s:.3f} | {ratio}"
            f" | {100 * row.cer:.2f} | {row.cpu.own_s:.1f} | {row.cpu.others_s:.1f}"
            f" | {megabytes(row.pool_mb)} | {megabytes(row.tesseract_mb)} |"
        )
    print(
        "\nCER: edit distance over the whole document's characters (whitespace runs as one space)."
        " CPU s: user + system of the run's own processes during the timed span (the CLI's shell,"
        " xargs and tesseracts; the worker, its pool processes and the relay;"
        " and this script); others' CPU s: the rest of the machine's busy time in that span, which"
        " slows the row it lands on. MB are 10^6 bytes. pool peak: the highest VmHWM of the"
        " worker's pool processes over the worker's life (warm-up included), sampled every 0.1 s"
        " and just before it stopped (the job's tesseract engine is in it); tesseract peak: the highest"
        " VmHWM of any tesseract process seen (sampled every 0.1 s): the CLI's."
    )


def megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_verdicts(rows: list[Measure], processes: int) -> None:
    job, full = find(rows, "ocr job", processes), find(rows, "tesseract", processes, PRIMARY)
    txt = find(rows, "tesseract", processes, f", {TXT_ONLY}")
    assert job is not None and full is not None and txt is not None
    speed, gap = job.pages_per_s / full.pages_per_s, 100 * (job.cer - full.cer)
    print("\nTargets:")
    print(
        f"  job pages/s vs CLI txt tsv pdf at -P {processes}: {speed:.2f}x, >= {SPEED_TARGET}x: {verdict(speed >= SPEED_TARGET)}"
    )
    print(f"  (for information) vs CLI txt only: {job.pages_per_s / txt.pages_per_s:.2f}x")
    print(
        f"  (for information) CPU s per page: job {job.cpu.own_s / job.pages:.2f},"
        f" CLI txt tsv pdf {full.cpu.own_s / full.pages:.2f}, CLI txt {txt.cpu.own_s / txt.pages:.2f}"
    )
    print(
        f"  job CER {100 * job.cer:.2f} % vs CLI {100 * full.cer:.2f} %: {gap:+.2f} pp, within ±{CER_TARGET_PP} pp: {verdict(abs(gap) <= CER_TARGET_PP)}"
    )
    for row in (r for r in rows if r.pool_mb is not None):
        met = verdict(row.pool_mb is not None and 0 < row.pool_mb < RSS_TARGET_MB)
        print(f"  {row.name}: peak RSS per pool process {row.pool_mb:.0f} MB, < {RSS_TARGET_MB} MB: {met}")
    print_scaling(rows, processes, job)
    print_sharing(rows)


def print_scaling(rows: list[Measure], processes: int, job: Measure) -> None:
    one, cli_one = find(rows, "ocr job", 1), find(rows, "tesseract", 1, PRIMARY)
    cli = find(rows, "tesseract", processes, PRIMARY)
    if processes == 1 or one is None or cli_one is None or cli is None:
        return
    print(
        f"  scaling (reported): the job's speed-up from 1 to {processes} processes"
        f" {job.pages_per_s / one.pages_per_s:.2f}x; the CLI's {cli.pages_per_s / cli_one.pages_per_s:.2f}x"
    )


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
