"""What a worker settles at its start: its pool's recycling limits for the queues it serves,
and one line each for what it will do (queues, concurrency, prefetch, recycling)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from jobs.broker.queues import QUEUES
from jobs.settings import Settings
from workers.recycling import Recycling, recycling

log = logging.getLogger("conveyor.worker")
KIB_PER_MB = 1024


def settle_at_start(app: Celery, settings: Settings) -> None:
    def configure(conf: Any = None, options: Any = None, **_: Any) -> None:
        limits = recycling(settings, _served(options or {}))
        if (options or {}).get("max_tasks_per_child") is None:
            conf.worker_max_tasks_per_child = limits.max_tasks or None
        if (options or {}).get("max_memory_per_child") is None:
            conf.worker_max_memory_per_child = limits.max_memory_mb * KIB_PER_MB or None

    def announce(instance: Any = None, **_: Any) -> None:
        for line in describe(instance, app):
            log.info(line)

    signals.celeryd_init.connect(configure, weak=False)
    signals.celeryd_after_setup.connect(announce, weak=False)


def _served(options: dict[str, Any]) -> list[str]:
    """The queues `-Q` names (every work queue without it)."""
    given = options.get("queues") or []
    named = [q.strip() for item in ([given] if isinstance(given, str) else given) for q in item.split(",")]
    return [queue for queue in named if queue in QUEUES] or list(QUEUES)


def describe(worker: Any, app: Celery) -> list[str]:
    queues = sorted(app.amqp.queues.consume_from or app.amqp.queues)
    concurrency, prefetch = worker.concurrency, worker.prefetch_multiplier
    memory_kib = worker.max_memory_per_child or 0
    limits = Recycling(worker.max_tasks_per_child or 0, memory_kib // KIB_PER_MB)
    return [
        f"queues: {', '.join(queues)}",
        f"concurrency: {concurrency} {worker.pool_cls.__module__.rsplit('.', 1)[-1]} processes",
        f"prefetch: {prefetch} a process, so up to {prefetch * concurrency} messages reserved ahead",
        f"recycling: {limits.describe()}",
    ]
