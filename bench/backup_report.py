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
FC_BEFORE, FC_AFTER = "pg_dump -Fc -f (before the jobs)", "pg_dump -Fc -f (after the jobs)"
GZIP = "pg_dump | gzip >"
STORAGES = ("file://", "s3://")


@dataclass
class Anchor:
    seconds: float
    size: int


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
    anchors: dict[str, Anchor] = field(default_factory=dict)
    backups: dict[str, JobRun] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
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
        found = [self.anchors[k].seconds for k in (FC_BEFORE, FC_AFTER) if k in self.anchors]
        return statistics.fmean(found) if found else None


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
        "| row | backup wall s | x pg_dump -Fc | verify s | job wall s | size MB | pool VmHWM MB "
        "| over baseline MB | pool VmRSS max MB | pg_dump peak MB | pool CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    anchor = results.pg_dump_s
    for label, found in results.anchors.items():
        cells = f"{found.seconds:.2f} | {ratio(found.seconds, anchor)} | - | - | {found.size / MB:.1f}"
        print(f"| {label} | {cells} | - | - | - | - | - |")
    for storage, run in results.backups.items():
        print(backup_row(storage, run, results.manifests.get(storage, {}), anchor))
    print(f"\nx pg_dump -Fc divides by the mean of the pg_dump -Fc runs: {fmt(anchor)} s.")


def backup_row(storage: str, run: JobRun, manifest: dict[str, Any], anchor: float | None) -> str:
    label = f"backup job, {storage}"
    if not run.ok:
        return f"| {label} | failed: {run.error} | | | {run.wall_s:.2f} | | {run.peak_mb:.0f} | | | | |"
    wall, verify = manifest.get("duration_s"), run.result.get("verify_s")
    size = manifest.get("size") or run.result.get("size") or 0
    tool = run.tools_mb.get("pg_dump")
    return (
        f"| {label} | {fmt(wall)} | {ratio(wall, anchor)} | {fmt(verify)} | {run.wall_s:.2f} "
        f"| {size / MB:.1f} | {run.peak_mb:.0f} | {run.peak_mb - run.baseline_mb:.0f} | {run.sampled_mb:.0f} | {fmt(tool, 0)} | {run.cpu_s:.2f} |"
    )


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


def within(wall: float | None, anchor: float | None) -> bool:
    return wall is not None and anchor is not None and wall <= BACKUP_RATIO * anchor


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_verdicts(results: Results) -> None:
    print("\nTargets:")
    anchor = results.pg_dump_s
    for storage in STORAGES:
        run, wall = results.backups.get(storage), results.manifests.get(storage, {}).get("duration_s")
        met = run is not None and run.ok and within(wall, anchor)
        print(
            f"  backup on {storage} <= {BACKUP_RATIO}x pg_dump -Fc ({ratio(wall, anchor)}x): {verdict(met)}"
        )
    for storage in STORAGES:
        run = results.backups.get(storage)
        peak = "not measured" if run is None else f"{run.peak_mb:.0f} MB"
        met = run is not None and run.ok and run.peak_mb < RSS_TARGET_MB
        print(f"  worker peak RSS, backup on {storage}, < {RSS_TARGET_MB} MB ({peak}): {verdict(met)}")
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
