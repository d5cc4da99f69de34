"""A pool process told to stop in the middle of a job ends at once.

billiard's stop handler in a pool process raises SystemExit, unwinds the job and then writes a
last message to the pool's shared result pipe; on a hard time limit billiard sends SIGKILL 0.1 s
after SIGTERM. On a busy machine the kill lands while that write holds the pipe's lock, which no
process then releases: every later pool process blocks on it and the worker never runs another job
(seen with the threaded pool of the embedded broker). While a job runs, the default action ends
the process at once instead, holding no pool lock; the parent already accounts for the job (a dead
letter on a time limit, a redelivery when a worker is lost). Between jobs billiard's handler stays,
since it releases the lock an idle process holds while it waits for work.
"""

from __future__ import annotations

import signal
from typing import Any

from celery import signals


class _PoolProcess:
    """Set in pool processes only: the worker's main process keeps Celery's own stop handler."""

    active = False
    billiard_handler: Any = None


def _in_pool_process(**_: Any) -> None:
    _PoolProcess.active = True


def _job_started(**_: Any) -> None:
    if _PoolProcess.active:
        _PoolProcess.billiard_handler = signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _job_ended(**_: Any) -> None:
    if _PoolProcess.billiard_handler is not None:
        signal.signal(signal.SIGTERM, _PoolProcess.billiard_handler)


def end_at_once_while_a_job_runs() -> None:
    signals.worker_process_init.connect(_in_pool_process, weak=False)
    signals.task_prerun.connect(_job_started, weak=False)
    signals.task_postrun.connect(_job_ended, weak=False)
