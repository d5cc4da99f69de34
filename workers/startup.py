"""What a worker settles at its start: its pool's recycling limits for the queues it serves,
and one line each for what it will do (queues, concurrency, prefetch, recycling)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from celery.concurrency import ALIASES

from jobs.broker.queues import QUEUES
from jobs.settings import Settings
from workers.recycling import Recycling, recycling

log = logging.getLogger("conveyor.worker")
RECYCLED_POOLS = ("prefork",)
"""Pools whose processes billiard replaces; threads, solo and the green pools have none."""


def settle_at_start(app: Celery, settings: Settings) -> None:
    """Celery's signals are global: each handler acts for this app's workers only."""

    def configure(instance: Any = None, conf: Any = None, options: Any = None, **_: Any) -> None:
        if instance.app is not app:
            return
        given = options or {}
        limits = recycling(settings, served(given))
        if given.get("max_tasks_per_child") is None:
            conf.worker_max_tasks_per_child = limits.max_tasks or None
        if given.get("max_memory_per_child") is None:
            conf.worker_max_memory_per_child = limits.max_memory_kib or None

    def announce(instance: Any = None, **_: Any) -> None:
        for line in describe(instance) if instance.app is app else ():
            log.info(line)

    signals.celeryd_init.connect(configure, weak=False)
    signals.celeryd_after_setup.connect(announce, weak=False)


def served(options: dict[str, Any]) -> list[str]:
    """The queues `-Q` names (every work queue without it), less those `-X` excludes."""
    named = _names(options.get("queues")) or list(QUEUES)
    excluded = set(_names(options.get("exclude_queues")))
    return [queue for queue in named if queue in QUEUES and queue not in excluded]


def _names(given: Any) -> list[str]:
    items = [given] if isinstance(given, str) else list(given or [])
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def describe(worker: Any) -> list[str]:
    queues = worker.app.amqp.queues
    pool = pool_name(worker.pool_cls)
    limits = Recycling(worker.max_tasks_per_child or 0, worker.max_memory_per_child or 0)
    reserved = worker.prefetch_multiplier * worker.concurrency
    return [
        f"queues: {', '.join(sorted(queues.consume_from or queues))}",
        f"concurrency: {worker.concurrency} ({pool} pool)",
        f"prefetch: {worker.prefetch_multiplier} a process, so up to {reserved} messages reserved ahead",
        "recycling: "
        + (limits.describe() if pool in RECYCLED_POOLS else f"none (the {pool} pool has no processes)"),
    ]


def pool_name(pool_cls: Any) -> str:
    path = pool_cls if isinstance(pool_cls, str) else f"{pool_cls.__module__}:{pool_cls.__name__}"
    return next((alias for alias, target in ALIASES.items() if target == path), path)
