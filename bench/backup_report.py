"""The figures bench/backup.py gathers, one table per part, and the verdict on each target."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.backup_load import Window
from bench.backup_worker import JobRun

MB = 1_000_000
BACKUP_RATIO = 1.1
RSS_TARGET_MB = 100
FC_ALONE = "pg_dump -Fc -f, before the platform started"
FC_BESIDE = "pg_dump -Fc -f, before each backup job"
GZIP = "pg_dump \\| gzip >"  # escaped: the label is a Markdown table cell
COUNT = "count(*) of every table (the job counts them in the dump's snapshot)"
STORAGES = ("file://", "s3://")


@dataclass
class Anchor:
    seconds: float
    size: int


@dataclass
class Backed:
    """One backup job, and the manifest row it wrote (empty if it wrote none)."""

    run: JobRun
    manifest: dict[str, Any]
    anchor_s: float | None
    """The pg_dump -Fc run just before this job."""

    @property
    def wall_s(self) -> float | None:
        wall = self.manifest.get("duration_s") if self.run.ok else None
        return None if wall is None else float(wall)

    @property
    def ratio(self) -> float | None:
        return None if self.wall_s is None or not self.anchor_s else self.wall_s / self.anchor_s


@dataclass
class Purge:
    quiet: Window
    busy: Window
    run: JobRun
    counts: dict[str, int]
    expected_live: int
    seeded: tuple[int, int]


@dataclass
class Results:
    scale: int
    generate_s: float = 0.0
    database_bytes: int = 0
    anchors: dict[str, list[Anchor]] = field(default_factory=dict)
    backups: dict[str, list[Backed]] = field(default_factory=dict)
    restore_s: float | None = None
    drills: dict[str, JobRun] = field(default_factory=dict)
    drill_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    purge: Purge | None = None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def failed(self, what: str, error: object) -> None:
        message = f"{what}: {error}"
        print(f"  FAILED {message}", flush=True)
        self.failures.append(message)

    @property
    def pg_dump_s(self) -> float | None:
        return median([a.seconds for a in self.anchors.get(FC_BESIDE, [])])

    def backup_ratio(self, storage: str) -> float | None:
        """The median over the rounds of backup wall time / the pg_dump -Fc just before it, if
        every round succeeded: pairs see the same machine, whatever else runs on it."""
        found = [b.ratio for b in self.backups.get(storage, [])]
        return median([r for r in found if r is not None]) if found and None not in found else None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(value: float | None, anchor: float | None) -> str:
    return "-" if value is None or not anchor else f"{value / anchor:.2f}"


def print_database(results: Results) -> None:
    print("\n### 1. The database\n")
    print("| pgbench scale | pgbench -i s | pg_database_size MB |")
    print("|---:|---:|---:|")
    print(f"| {results.scale} | {results.generate_s:.1f} | {results.database_bytes / MB:.0f} |")


def print_backups(results: Results) -> None:
    print("\n### 2-3. Backup: the job against pg_dump\n")
    print(
        "| row | runs | median s | min s | max s | x pg_dump -Fc | pg_dump -Fc beside s | verify s | job wall s | size MB "
        "| pool VmHWM MB | over baseline MB | pool VmRSS max MB | pg_dump peak MB | pool CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    anchor = results.pg_dump_s
    for label, found in results.anchors.items():
        times = [a.seconds for a in found]
        cells = f"{len(found)} | {fmt(median(times))} | {min(times):.2f} | {max(times):.2f}"
        size = f"{found[-1].size / MB:.1f}" if found[-1].size else "-"
        # No pairing, verification or job for a tool; nor the pool process's memory and CPU.
        print(f"| {label} | {cells} | {ratio(median(times), anchor)} | - | - | - | {size} {'| - ' * 5}|")
    for storage, backed in results.backups.items():
        print(backup_row(f"backup job, {storage}", backed))
        for failed in (b.run for b in backed if not b.run.ok):
            print(f"  a backup on {storage} failed: {failed.error}")
    print(
        "\nx pg_dump -Fc: for a tool's row, its median over the median of the pg_dump -Fc runs before "
        f"each backup job ({fmt(anchor)} s); for a job's row, the median over its rounds of its backup "
        "wall time over the pg_dump -Fc run just before it (whose median is 'pg_dump -Fc beside')."
    )


def backup_row(label: str, backed: list[Backed]) -> str:
    """Medians of times, highest of memory, over the rounds that succeeded."""
    good = [b for b in backed if b.wall_s is not None]
    if not good:
        return f"| {label} | {len(backed)} | failed |" + " |" * 12
    walls = [b.wall_s or 0.0 for b in good]
    runs = [b.run for b in good]
    verify = median([float(r.result.get("verify_s", 0.0)) for r in runs])
    tools = [r.tools_mb.get("pg_dump", 0.0) for r in runs]
    cells = [
        f"{len(good)} of {len(backed)}", fmt(median(walls)), f"{min(walls):.2f}", f"{max(walls):.2f}",
        fmt(median([b.ratio or 0.0 for b in good])), fmt(median([b.anchor_s or 0.0 for b in good])),
        fmt(verify), fmt(median([r.wall_s for r in runs])),
        f"{float(good[-1].manifest.get('size') or 0) / MB:.1f}", f"{max(r.peak_mb for r in runs):.0f}",
        f"{max(r.peak_mb - r.baseline_mb for r in runs):.0f}", f"{max(r.sampled_mb for r in runs):.0f}",
        f"{max(tools):.0f}", fmt(median([r.cpu_s for r in runs])),
    ]  # fmt: skip
    return f"| {label} | {' | '.join(cells)} |"


def print_restores(results: Results) -> None:
    print("\n### 4. Restore: the drill against pg_restore --jobs 2\n")
    print(
        "| row | RTO s | download s | restore s | check s | RTO x pg_restore | restore x pg_restore "
        "| job wall s | pool VmHWM MB | pg_restore peak MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    raw = results.restore_s
    print(
        f"| pg_restore --jobs 2 (the .dump of pg_dump -Fc) | {fmt(raw)} | - | {fmt(raw)} | - | 1.00 | 1.00 | - | - | - |"
    )
    for storage, run in results.drills.items():
        label = f"restore-drill job, backup on {storage}"
        if not run.ok:
            print(f"| {label} | failed: {run.error} | | | | | | {run.wall_s:.2f} | {run.peak_mb:.0f} | |")
            continue
        found = results.drill_rows.get(storage) or run.result
        rto, restore = found.get("rto_s"), found.get("restore_s")
        splits = f"{fmt(found.get('download_s'))} | {fmt(restore)} | {fmt(found.get('check_s'))}"
        ratios = f"{ratio(rto, raw)} | {ratio(restore, raw)}"
        tool = fmt(run.tools_mb.get("pg_restore"), 0)
        print(
            f"| {label} | {fmt(rto)} | {splits} | {ratios} | {run.wall_s:.2f} | {run.peak_mb:.0f} | {tool} |"
        )


def print_purge(purge: Purge) -> None:
    print("\n### 5. POST /v1/jobs while the idempotency-key purge runs\n")
    print("| window | s | POSTs | POSTs/s | p50 ms | p99 ms | max ms | refused | p99 x no purge |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    quiet_p99 = purge.quiet.ms(0.99)
    for label, window in (("no purge", purge.quiet), ("while the purge runs", purge.busy)):
        count, seconds = len(window.samples), window.seconds
        rate = count / seconds if seconds else 0.0
        cells = f"{seconds:.1f} | {count} | {rate:.0f} | {window.ms(0.5):.1f} | {window.ms(0.99):.1f}"
        print(
            f"| {label} | {cells} | {window.ms(1.0):.1f} | {window.failed} | {ratio(window.ms(0.99), quiet_p99)} |"
        )
    for window in (purge.quiet, purge.busy):
        if window.errors:
            print(f"  refusals, e.g. {window.errors[:2]}")
    print_purge_job(purge)


def print_purge_job(purge: Purge) -> None:
    run, (expired, live) = purge.run, purge.seeded
    if run.ok and run.job is not None and run.job.started_at and run.job.finished_at:
        took = (run.job.finished_at - run.job.started_at).total_seconds()
        purged = run.result.get("purged", 0)
        print(
            f"\nThe purge (batch_size 5000) deleted {purged} of the {expired} expired keys in {took:.1f} s "
            f"({purged / max(took, 1e-9):.0f}/s); pool VmHWM {run.peak_mb:.0f} MB."
        )
    else:
        print(f"\nThe purge failed: {run.error}")
    counts = purge.counts
    print(
        f"Left: {counts['expired']} seeded expired keys; {counts['seeded live']} of {live} seeded live keys; "
        f"{counts['live']} live keys in all, {purge.expected_live} expected (seeded + accepted POSTs): "
        f"{'no live key was deleted' if live_kept(purge) else 'LIVE KEYS WERE DELETED'}."
    )


def live_kept(purge: Purge) -> bool:
    return purge.counts["seeded live"] == purge.seeded[1] and purge.counts["live"] >= purge.expected_live


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_verdicts(results: Results) -> None:
    print("\nTargets:")
    for storage in STORAGES:
        found = results.backup_ratio(storage)
        met = found is not None and found <= BACKUP_RATIO
        print(f"  backup on {storage} <= {BACKUP_RATIO}x pg_dump -Fc ({fmt(found, 3)}x): {verdict(met)}")
    for storage in STORAGES:
        runs = [b.run for b in results.backups.get(storage, [])]
        peak = max((r.peak_mb for r in runs), default=None)
        met = bool(runs) and all(r.ok for r in runs) and peak is not None and peak < RSS_TARGET_MB
        print(
            f"  worker peak RSS, backup on {storage}, < {RSS_TARGET_MB} MB ({fmt(peak, 0)} MB): {verdict(met)}"
        )
    drilled = [s for s, row in results.drill_rows.items() if row.get("ok") and row.get("rto_s") is not None]
    print(f"  drill RTO reported ({', '.join(drilled) or 'none'}): {verdict(bool(drilled))}")
    purge = results.purge
    reported = purge is not None and purge.run.ok and bool(purge.quiet.samples) and bool(purge.busy.samples)
    print(f"  purge p99 reported: {verdict(reported)}")
    if purge is not None:
        print(f"  (check) no live key deleted by the purge: {verdict(live_kept(purge))}")
    for note in results.notes:
        print(f"- {note}")
    if results.failures:
        print("\nWhat broke:", *(f"  {failure}" for failure in results.failures), sep="\n")
