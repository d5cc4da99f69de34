"""Where the CPU went during a phase: CPU seconds per process group, read from /proc.

On a small machine every process of the platform competes for the same cores, so a slow phase is
explained by who burnt the CPU: the API, the worker, PostgreSQL, the broker, the clients, or
something else on the machine that is not part of the benchmark.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
SERVICES = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ", "redis-server": "Redis"}
SAMPLE_S = 0.25


class CpuMeter:
    """Samples every process's CPU time in a thread; ``labels`` maps our session ids to names.

    Sampling (rather than two snapshots) keeps the time of processes that exit during the phase,
    such as the client processes, short of their last quarter second.
    """

    def __init__(self, labels: dict[int, str]):
        self.labels = labels
        self.baseline = _cpu_times()
        self.latest: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> CpuMeter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            for pid, (sid, ppid, comm, seconds) in _cpu_times().items():
                self.latest[pid] = (self._label(pid, sid, ppid, comm), seconds)
            if self._stop.wait(SAMPLE_S):
                return

    def _label(self, pid: int, sid: int, ppid: int, comm: str) -> str:
        if sid in self.labels:
            return self.labels[sid]
        if os.getpid() in (pid, ppid):
            return "bench (clients, polling)"
        return SERVICES.get(comm, "other processes")

    def seconds_by_label(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for pid, (label, seconds) in self.latest.items():
            before = self.baseline.get(pid)
            used[label] = used.get(label, 0.0) + seconds - (before[3] if before else 0.0)
        return dict(sorted(used.items(), key=lambda item: -item[1]))


def _cpu_times() -> dict[int, tuple[int, int, str, float]]:
    """pid -> (session id, parent pid, command, user+system CPU seconds) for every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        ppid, sid, utime, stime = int(rest[1]), int(rest[3]), int(rest[11]), int(rest[12])
        found[int(entry.name)] = (sid, ppid, comm, (utime + stime) / TICKS)
    return found


def format_usage(used: dict[str, float], wall_s: float, jobs: int) -> str:
    """One line per group: CPU seconds, cores busy on average, and CPU milliseconds per job."""
    lines = [f"    {'CPU by process group':28} {'cpu s':>7} {'cores':>6} {'ms/job':>7}"]
    for label, seconds in used.items():
        if seconds >= 0.05:
            cores, per_job = seconds / max(wall_s, 1e-9), seconds * 1000 / max(jobs, 1)
            lines.append(f"    {label:28} {seconds:>7.2f} {cores:>6.2f} {per_job:>7.2f}")
    ours = sum(seconds for label, seconds in used.items() if label != "other processes")
    ceiling = (os.cpu_count() or 1) * jobs / max(ours, 1e-9)
    lines.append(
        f"    {'this benchmark, in all':28} {ours:>7.2f} {ours / max(wall_s, 1e-9):>6.2f} {ours * 1000 / max(jobs, 1):>7.2f}"
    )
    lines.append(f"    (CPU-bound ceiling with the whole machine: {ceiling:.0f} jobs/s)")
    return "\n".join(lines)
