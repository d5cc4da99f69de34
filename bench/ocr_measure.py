"""What bench/ocr.py measures with: a character error rate fast enough for a whole document, and
a sampler of the peak memory of a process tree (worker, pool processes, tesseract)."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.ocr_documents import normalised

SAMPLE_EVERY_S = 0.1
MB = 10**6
SHARED_ABOVE = 0.10  # of the machine's CPU time: the speed figures are then unreliable
TICKS = os.sysconf("SC_CLK_TCK")


def levenshtein(truth: str, got: str) -> int:
    """Edit distance by Hyyrö's bit-parallel form of Myers' algorithm, one Python integer as the
    bit vector of a whole column. tests.ocr_documents.character_error_rate fills the full table
    in Python, which is hours for a 40-page document (170,000 characters each way); this is
    seconds, and gives the same distance (checked against it in ``self_check``)."""
    if not truth:
        return len(got)
    masks: dict[str, int] = {}
    for index, char in enumerate(truth):
        masks[char] = masks.get(char, 0) | (1 << index)
    full, top = (1 << len(truth)) - 1, 1 << (len(truth) - 1)
    plus, minus, score = full, 0, len(truth)
    for char in got:
        equal = masks.get(char, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        up = minus | (~(horizontal | plus) & full)
        down = plus & horizontal
        score += 1 if up & top else -1 if down & top else 0
        up = ((up << 1) | 1) & full
        down = (down << 1) & full
        plus = down | (~(vertical | up) & full)
        minus = up & vertical
    return score


def document_cer(recognised: str, truth: str) -> float:
    """The CER of the whole document at once (whitespace runs counted as one space, as the
    tests' ``character_error_rate``): a page dropped or out of order counts in full."""
    want = normalised(truth)
    return levenshtein(want, normalised(recognised)) / max(1, len(want))


def self_check() -> None:
    """The fast distance must agree with the tests' plain one before any figure is trusted."""
    from random import Random

    from tests.ocr_documents import character_error_rate

    rng = Random(7)
    for _ in range(200):
        truth = "".join(rng.choice("ab c\nd") for _ in range(rng.randint(0, 90)))
        got = "".join(rng.choice("ab cde") for _ in range(rng.randint(0, 90)))
        expected = character_error_rate(got, truth)
        if abs(document_cer(got, truth) - expected) > 1e-12:
            raise AssertionError(f"bit-parallel distance disagrees on {truth!r} / {got!r}")


def tree(pid: int) -> list[int]:
    """``pid``'s descendants (any thread's children), depth first."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            for child in (int(p) for p in children.read_text().split()):
                found += [child, *tree(child)]
    return found


def status_kb(pid: int, key: str) -> int | None:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def command_name(pid: int) -> str:
    with suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


@dataclass
class PeakSampler:
    """Every 0.1 s, the VmHWM of each process under ``root`` by process, apart for tesseract (the
    CLI's, a process per page alive a few seconds: sampling catches its peak to within its last
    0.1 s; the job's tesseract is a library in the pool process, so counted in the pool's)."""

    root: int
    pool: dict[int, int] = field(default_factory=dict)
    tesseract: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PeakSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.sample()

    def sample(self) -> None:
        for pid in tree(self.root):
            kb = status_kb(pid, "VmHWM")
            if kb is None:
                continue
            peaks = self.tesseract if command_name(pid) == "tesseract" else self.pool
            peaks[pid] = max(peaks.get(pid, 0), kb * 1024)

    @property
    def pool_peak_mb(self) -> float:
        return max(self.pool.values(), default=0) / MB

    @property
    def tesseract_peak_mb(self) -> float | None:
        """None when no tesseract process ran (the job runs it in the pool process, tesserocr)."""
        return max(self.tesseract.values()) / MB if self.tesseract else None


def wall(start: float) -> float:
    return time.monotonic() - start


def machine_busy_s() -> float:
    """CPU seconds every core has spent on anything but idling since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / TICKS


def tree_cpu_s(*roots: int) -> float:
    """User + system seconds of these processes and their descendants, with the children they
    have reaped."""
    total = 0
    for pid in (p for root in roots for p in (root, *tree(root))):
        with suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
    return total / TICKS


def reaped_cpu_s() -> float:
    """This process's own CPU and that of the children it has reaped (the CLI's sh, xargs and
    tesseracts, once the shell has exited)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class CpuShare:
    """CPU seconds during one timed phase: the machine's and the measured side's. What is left
    is other processes' (a test run on the same cores), which slows whichever side it lands on."""

    machine_s: float = 0.0
    own_s: float = 0.0

    @property
    def others_s(self) -> float:
        return max(0.0, self.machine_s - self.own_s)


class Timed(Protocol):
    name: str
    seconds: float
    cpu: CpuShare


def print_sharing(rows: Sequence[Timed]) -> None:
    """The speed figures mean little when other processes took the cores; say so beside them."""
    cores = os.cpu_count() or 1
    shared = [r for r in rows if r.cpu.others_s > SHARED_ABOVE * r.seconds * cores]
    for row in shared:
        share = 100 * row.cpu.others_s / (row.seconds * cores)
        print(f"  WARNING: other processes took {share:.0f} % of the machine during {row.name}")
    if shared:
        print("  The speed verdicts above are unreliable: run again on a quiet machine.")
