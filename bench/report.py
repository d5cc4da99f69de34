"""The figures a phase produces, the per-broker table of medians and ratios of medians, and the
verdict against the issue's targets (each configuration runs ``--runs`` times in one invocation)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

RAW, DEFAULTS, API, BULK, DIRECT = (
    "raw Celery",
    "raw Celery, defaults",
    "Conveyor",
    "Conveyor, bulk",
    "Conveyor, no HTTP",
)
ROWS = (RAW, DEFAULTS, API, BULK, DIRECT)


@dataclass(frozen=True)
class Target:
    row: str
    what: str
    least: float | None = None
    most: float | None = None


TARGETS = (
    Target(BULK, "submissions/s", least=5000),
    Target(BULK, "end-to-end / raw", least=0.9),
    Target(BULK, "end-to-end / raw defaults", least=0.7),
    Target(API, "submissions/s", least=500),
    Target(API, "request p99 ms", most=50),
    Target(API, "end-to-end / raw", least=0.7),
    Target(DIRECT, "end-to-end / raw", least=0.9),  # the issue asks it of Redis; shown for both
)


@dataclass
class Result:
    submissions_per_s: float
    jobs_per_s: float
    p50_ms: float
    p99_ms: float
    completed: int
    expected: int
    failed: int = 0
    request_p99_ms: float | None = None


@dataclass
class BrokerResults:
    runs: dict[str, list[Result]] = field(default_factory=lambda: {row: [] for row in ROWS})

    def median(self, row: str, attribute: str) -> float:
        values = [
            getattr(result, attribute) for result in self.runs[row] if getattr(result, attribute) is not None
        ]
        return statistics.median(values) if values else math.nan

    def ratio(self, row: str, baseline: str) -> float:
        """This row's median end-to-end rate over the baseline's (the raw runs all come first,
        so pairing runs one by one would cancel no drift)."""
        base = self.median(baseline, "jobs_per_s")
        return self.median(row, "jobs_per_s") / base if base else math.nan

    def figure(self, target: Target) -> float:
        if target.what == "submissions/s":
            return self.median(target.row, "submissions_per_s")
        if target.what == "request p99 ms":
            return self.median(target.row, "request_p99_ms")
        return self.ratio(target.row, DEFAULTS if target.what.endswith("defaults") else RAW)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def print_table(broker: str, results: BrokerResults) -> None:
    print(f"\n== {broker}: medians of {max(len(runs) for runs in results.runs.values())} runs ==")
    print(
        f"{'':21} {'submit/s':>9} {'jobs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'req p99':>8} {'/raw':>6} {'/dflt':>6} done"
    )
    for row in ROWS:
        runs = results.runs[row]
        if not runs:
            print(f"{row:21} (did not run)")
            continue
        done = f"{sum(r.completed for r in runs)}/{sum(r.expected for r in runs)}"
        figures = [
            results.median(row, name) for name in ("submissions_per_s", "jobs_per_s", "p50_ms", "p99_ms")
        ]
        request = results.median(row, "request_p99_ms")
        ratios = [results.ratio(row, base) for base in (RAW, DEFAULTS)]
        cells = " ".join(f"{value:>{width}.1f}" for value, width in zip(figures, (9, 8, 8, 8), strict=True))
        print(f"{row:21} {cells} {request:>8.1f} {ratios[0]:>6.2f} {ratios[1]:>6.2f} {done}")


def print_verdict(results: dict[str, BrokerResults]) -> None:
    print("\nTargets (medians):")
    for broker, found in results.items():
        for target in TARGETS:
            value = found.figure(target)
            bound = f">= {target.least:g}" if target.least is not None else f"< {target.most:g}"
            met = not math.isnan(value) and (
                value >= target.least if target.least is not None else value < (target.most or 0)
            )
            print(f"  {broker}: {target.row}, {target.what} {value:.2f} ({bound}): {verdict(met)}")
        for row, runs in found.runs.items():
            if any(r.completed != r.expected or r.failed for r in runs):
                print(f"  {broker}: {row}: not every job succeeded in every run: MISSED")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"
