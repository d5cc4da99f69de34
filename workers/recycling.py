"""Pool processes replaced before a leak takes the worker down: after a number of jobs, or once
a job leaves the process above a memory bound (Celery checks after each job, whose outcome is
already written; billiard then starts a fresh process).

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


@dataclass(frozen=True)
class Recycling:
    max_tasks: int
    """0: never replaced for the count of its jobs."""
    max_memory_mb: int

    def describe(self) -> str:
        tasks = f"after {self.max_tasks:,} jobs" if self.max_tasks else "never for its job count"
        memory = f"above {self.max_memory_mb:,} MB" if self.max_memory_mb else "never for its memory"
        return f"a pool process is replaced {tasks}, or once a job leaves it {memory}"


def recycling(settings: Settings, queues: Iterable[str]) -> Recycling:
    served = list(queues)
    return Recycling(
        _strictest(served, DEFAULT_MAX_TASKS, settings.worker_max_tasks_per_child),
        _strictest(served, DEFAULT_MAX_MEMORY_MB, settings.worker_max_memory_mb),
    )


def _strictest(queues: list[str], defaults: dict[str, int], given: dict[str, int]) -> int:
    limits = [given.get(queue, given.get("*", defaults[queue])) for queue in queues]
    return min((limit for limit in limits if limit > 0), default=0)
