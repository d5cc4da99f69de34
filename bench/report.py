"""The figures a phase produces, the per-broker table, and the verdict against the issue's targets."""

from __future__ import annotations

import math
from dataclasses import dataclass

TARGET_RATIO = 0.5
TARGET_SUBMISSIONS_PER_S = 500.0


@dataclass
class Result:
    submissions_per_s: float
    jobs_per_s: float
    p50_ms: float
    p99_ms: float
    completed: int
    expected: int
    failed: int = 0


@dataclass
class BrokerResults:
    raw: Result | None = None
    conveyor: Result | None = None
    direct: Result | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def print_table(broker: str, results: BrokerResults) -> None:
    print(f"\n== {broker} ==")
    header = f"{'':18} {'submissions/s':>14} {'end-to-end jobs/s':>18} {'p50 ms':>9} {'p99 ms':>9}"
    print(f"{header} {'done':>11}")
    rows = (
        ("raw Celery", results.raw),
        ("Conveyor", results.conveyor),
        ("Conveyor, no HTTP", results.direct),
    )
    for label, result in rows:
        if result is None:
            print(f"{label:18} {'(did not run)':>14}")
            continue
        done = f"{result.completed}/{result.expected}"
        print(
            f"{label:18} {result.submissions_per_s:>14.1f} {result.jobs_per_s:>18.1f} "
            f"{result.p50_ms:>9.1f} {result.p99_ms:>9.1f} {done:>11}"
        )
    for label, result in (("Conveyor", results.conveyor), ("Conveyor, no HTTP", results.direct)):
        if results.raw and result and results.raw.jobs_per_s:
            print(f"{label}/raw end-to-end: {result.jobs_per_s / results.raw.jobs_per_s:.2f}")


def print_verdict(results: dict[str, BrokerResults]) -> None:
    print("\nTargets (Conveyor through the API):")
    for broker, found in results.items():
        raw, conveyor = found.raw, found.conveyor
        if raw is None or conveyor is None or not raw.jobs_per_s:
            print(f"  {broker}: NOT MEASURED")
            continue
        ratio = conveyor.jobs_per_s / raw.jobs_per_s
        print(
            f"  {broker}: end-to-end ratio {ratio:.2f} (>= {TARGET_RATIO}): {verdict(ratio >= TARGET_RATIO)}"
        )
        rate, target = conveyor.submissions_per_s, TARGET_SUBMISSIONS_PER_S
        print(f"  {broker}: API submissions {rate:.0f}/s (>= {target:.0f}/s): {verdict(rate >= target)}")
        if conveyor.completed != conveyor.expected or conveyor.failed:
            print(f"  {broker}: only {conveyor.completed} of {conveyor.expected} jobs succeeded: MISSED")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"
