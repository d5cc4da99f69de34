"""Pool processes replaced before a leak takes the worker down: after a number of jobs, or after
the job that takes the process's peak resident memory (`ru_maxrss`, what billiard reads on Linux)
above a bound. Both are checked after each job, whose outcome is already written; billiard then
starts a fresh process.

Defaults per queue, for what its handlers do:

- `default` (echo, sleep, s3-sync streaming in parts): a backstop only, 10,000 jobs or 512 MB.
- `maintenance` (purges, and pg_dump / pg_restore, which run as child processes whose memory is
  not the pool process's): 1,000 jobs or 512 MB.
- `imports` (rows parsed and loaded in batches, large ones held for a moment): 500 jobs or 1 GB.
- `ocr` (tesseract and PDF rendering keep C heap that Python never returns, and a 300-dpi page
  is tens of MB as a bitmap): 200 jobs or 1 GB, so a process is replaced well before a leaking
  run of documents can reach the OOM killer.

A worker serving several queues takes the strictest limit among them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jobs.settings import Settings

DEFAULT_MAX_TASKS = {"default": 10_000, "maintenance": 1_000, "imports": 500, "ocr": 200}
DEFAULT_MAX_MEMORY_MB = {"default": 512, "maintenance": 512, "imports": 1024, "ocr": 1024}


KIB_PER_MB = 1024


@dataclass(frozen=True)
class Recycling:
    max_tasks: int
    """0: never replaced for the count of its jobs."""
    max_memory_kib: int
    """In KiB, as Celery's `worker_max_memory_per_child`; 0: never replaced for its memory."""

    def describe(self) -> str:
        tasks = f"after {self.max_tasks:,} jobs" if self.max_tasks else "never for its job count"
        return f"a pool process is replaced {tasks}, and {self._memory()}"

    def _memory(self) -> str:
        if not self.max_memory_kib:
            return "never for its memory"
        mb, kib = divmod(self.max_memory_kib, KIB_PER_MB)
        bound = f"{mb:,} MB" if not kib else f"{self.max_memory_kib:,} KiB"
        return f"after the job that takes its peak resident memory above {bound}"


def recycling(settings: Settings, queues: Iterable[str]) -> Recycling:
    served = list(queues)
    memory_mb = _strictest(served, DEFAULT_MAX_MEMORY_MB, settings.worker_max_memory_mb)
    return Recycling(
        _strictest(served, DEFAULT_MAX_TASKS, settings.worker_max_tasks_per_child), memory_mb * KIB_PER_MB
    )


def _strictest(queues: list[str], defaults: dict[str, int], given: dict[str, int]) -> int:
    limits = [given.get(queue, given.get("*", defaults[queue])) for queue in queues]
    return min((limit for limit in limits if limit > 0), default=0)
