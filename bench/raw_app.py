"""The baselines: plain Celery apps with one no-op task, on the broker Conveyor uses.

``app`` shares only the broker-side setup with Conveyor (queue arguments, transport options,
JSON, late acks, prefetch), so the ratio Conveyor/raw measures what Conveyor adds on top of
Celery. ``defaults`` is Celery as a user installs it: early acks, no publisher confirms, a
classic queue, default prefetch. ``celery -A bench.raw_app[:defaults] worker`` finds them; the settings come from the
same ``CONVEYOR_*`` variables, and ``BENCH_TIMINGS_DIR`` names the folder the task records in.

Timings go to files, not Redis: tests flush their Redis databases, and a flush in the middle of a
run would lose completions. One file per run and pool process, appended with single ``write``
calls (atomic with ``O_APPEND``), so no line is ever torn.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

from jobs.broker.config import transport_options
from jobs.broker.queues import work_queues
from jobs.settings import Settings, load_settings

RAW_QUEUE = "bench.raw"
DEFAULTS_QUEUE = "bench.raw-defaults"
NOOP_TASK = "bench.noop"
TIMINGS_DIR = Path(os.environ.get("BENCH_TIMINGS_DIR", "var/bench"))


def noop(published_at: float, run_key: str) -> None:
    """Append "published,finished" (epoch seconds); the number of lines counts completions."""
    line = f"{published_at!r},{time.time()!r}\n".encode()
    fd = os.open(TIMINGS_DIR / f"{run_key}-{os.getpid()}.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_timings(folder: Path, run_key: str) -> list[tuple[float, float]]:
    """Every (published, finished) pair recorded so far for ``run_key``."""
    pairs = []
    for path in folder.glob(f"{run_key}-*.txt"):
        for line in path.read_text().splitlines():
            published, finished = line.split(",")
            pairs.append((float(published), float(finished)))
    return pairs


def raw_queue(settings: Settings) -> Queue:
    """Declared with the same arguments as Conveyor's ``default`` queue (quorum on RabbitMQ)."""
    arguments = work_queues(settings)[0].queue_arguments  # type: ignore[attr-defined]  # kombu's stubs omit it
    return Queue(
        RAW_QUEUE, Exchange(RAW_QUEUE, type="direct"), routing_key=RAW_QUEUE, queue_arguments=arguments
    )


def make_raw_app(settings: Settings) -> Celery:
    app = Celery("bench-raw", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=settings.worker_prefetch,
        task_queues=[raw_queue(settings)],
        task_default_queue=RAW_QUEUE,
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
    )
    app.task(name=NOOP_TASK)(noop)
    return app


def make_defaults_app(settings: Settings) -> Celery:
    """Only what a no-op task with a JSON body needs; everything else left as Celery ships it."""
    app = Celery("bench-defaults", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        task_ignore_result=True,
        task_default_queue=DEFAULTS_QUEUE,
        worker_hijack_root_logger=False,
    )
    app.task(name=NOOP_TASK)(noop)
    return app


app = make_raw_app(load_settings())
defaults = make_defaults_app(load_settings())
