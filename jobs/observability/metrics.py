"""The platform's metrics, served by the relay (``CONVEYOR_RELAY_METRICS_ADDRESS``).

Why the relay: the database holds every job's outcome, whichever worker ran it, so one process
that reads it sees the whole platform; workers come and go, are scaled and killed, and would each
need scraping, and Celery's events reach an exporter only while something turns them on. The
relay already reads the outbox and the dead letters, and there is one of it.

Names are celery-exporter's where it has one, so its dashboards work: the ``celery_task_*``
counters grow by the jobs that started or finished since the last scrape (read a few seconds
behind, so a commit in flight is not missed), and start again from zero when the relay restarts,
as a counter may. The rest is Conveyor's own, read at each scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from jobs.models import Job, JobState, utcnow
from jobs.observability import gauges
from jobs.settings import Settings

log = logging.getLogger(__name__)

LAG = timedelta(seconds=5)
MAX_WINDOW = timedelta(minutes=10)  # after a longer gap between scrapes, the older part is not counted
# What an ended job adds: its outcome, attempts, last attempt's span, and rows or pages it read.
ENDED = (
    *(Job.type, Job.queue, Job.state, Job.attempts, Job.started_at, Job.finished_at),
    case(
        (Job.type == "import", Job.result["rows_read"].as_integer()),
        (Job.type == "ocr", Job.result["pages"].as_integer()),
        else_=None,
    ),
)
WORKER_FORGOTTEN = timedelta(hours=1)  # a worker scaled away or replaced stops counting after this
RUNTIME_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)


class Platform:
    """The counters and histograms a scrape brings up to date (in a registry of their own, read
    by PlatformCollector after it has brought them up to date)."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=False)

        def counter(name: str, what: str) -> Counter:
            return Counter(name, what, ["name", "queue_name"], registry=registry)

        self.sent = counter(
            "celery_task_sent", "Jobs put on their way: submitted, or due when they run later."
        )
        self.received = counter("celery_task_received", "Jobs a worker took (an attempt started).")
        self.started = counter("celery_task_started", "Attempts started.")
        self.succeeded = counter("celery_task_succeeded", "Jobs that succeeded.")
        self.failed = counter("celery_task_failed", "Jobs that ended dead: their last attempt failed.")
        self.retried = counter("celery_task_retried", "Attempts after the first, of the jobs that ended.")
        self.rows = Counter("conveyor_import_rows", "Rows read by import jobs that ended.", registry=registry)
        self.pages = Counter("conveyor_ocr_pages", "Pages read by OCR jobs that ended.", registry=registry)
        self.runtime = Histogram(
            "celery_task_runtime_seconds", "A job's last attempt, start to end.", ["name", "queue_name"],
            buckets=RUNTIME_BUCKETS, registry=registry,
        )  # fmt: skip
        self.wait = Histogram(
            "celery_task_queue_wait_time_seconds", "From queued to started.", ["name", "queue_name"],
            buckets=RUNTIME_BUCKETS, registry=registry,
        )  # fmt: skip
        self.since: datetime | None = utcnow() - LAG  # what the relay has seen since it started
        self.lock = threading.Lock()
        self.workers: dict[str, datetime] = {}  # every worker seen answering, and when

    def workers_up(self, answering: set[str], now: datetime) -> list[tuple[str, str, int]]:
        """1 for each worker answering now, 0 for one seen within WORKER_FORGOTTEN that is not;
        ``queues`` is its node name's part before the host (``ocr``, ``default-maintenance``)."""
        with self.lock:
            self.workers.update(dict.fromkeys(answering, now))
            self.workers = {name: at for name, at in self.workers.items() if now - at < WORKER_FORGOTTEN}
            return [(name, name.partition("@")[0], int(name in answering)) for name in sorted(self.workers)]

    def catch_up(self, session: Session, now: datetime) -> None:
        """Count what was submitted, started and ended from the last scrape up to ``now`` less
        LAG (at most MAX_WINDOW back); the mark moves on only once all of it is counted."""
        with self.lock:
            until = now - LAG
            since = max(self.since or until, until - MAX_WINDOW)

            def within(at: Any) -> Any:
                return and_(at > since, at <= until)

            by_type = (Job.type, Job.queue)
            created = session.execute(
                select(*by_type, func.count()).where(within(Job.created_at)).group_by(*by_type)
            )
            started = session.execute(
                select(*by_type, Job.queued_at, Job.started_at).where(within(Job.started_at))
            )
            ended = session.execute(select(*ENDED).where(within(Job.finished_at)))
            submitted, began, done = list(created), list(started), list(ended)
            for kind, queue, count in submitted:
                self.sent.labels(kind, queue).inc(count)
            for first in began:
                self._started(*first)
            for last in done:
                self._ended(*last)
            self.since = until

    def _started(
        self, kind: str, queue: str, queued_at: datetime | None, started_at: datetime | None
    ) -> None:
        self.received.labels(kind, queue).inc()
        self.started.labels(kind, queue).inc()
        if queued_at and started_at:
            self.wait.labels(kind, queue).observe(max(0.0, (started_at - queued_at).total_seconds()))

    def _ended(
        self, kind: str, queue: str, state: str, attempts: int, started: Any, finished: Any, done: Any
    ) -> None:
        if state == JobState.SUCCEEDED:
            self.succeeded.labels(kind, queue).inc()
        elif state == JobState.DEAD:
            self.failed.labels(kind, queue).inc()
        if attempts > 1:
            self.retried.labels(kind, queue).inc(attempts - 1)
        if started and finished:
            self.runtime.labels(kind, queue).observe(max(0.0, (finished - started).total_seconds()))
        if kind == "import":
            self.rows.inc(int(done or 0))
        elif kind == "ocr":
            self.pages.inc(int(done or 0))


class PlatformCollector(Collector):
    """Gauges read from the database and the broker at each scrape."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], platform: Platform):
        self.settings, self.sessions, self.platform = settings, sessions, platform

    def collect(self) -> Iterator[Metric]:
        """Each source apart: one that fails (the database, the broker) is told by
        ``conveyor_metrics_source_up`` and the others are still read."""
        now, up = utcnow(), []
        for source, read in (("database", self._database), ("broker", self._broker)):
            try:
                found = list(read(now))
            except Exception as exc:
                log.warning("The relay's metrics could not read the %s: %s", source, exc)
                found = []
            up.append((source, int(bool(found))))
            yield from found
        yield gauges.gauge(
            "conveyor_metrics_source_up", "1 when a scrape could read the source.", ["source"], up
        )

    def _database(self, now: datetime) -> Iterator[Metric]:
        with self.sessions() as session:
            self.platform.catch_up(session, now)
            yield from self.platform.registry.collect()
            yield from gauges.read(session, self.settings, now)

    def _broker(self, now: datetime) -> Iterator[Metric]:
        yield from gauges.queue_lengths(self.settings)
        answering = gauges.answering(self.settings)
        if answering is not None:
            yield gauges.gauge(
                "celery_worker_up", "1 while a worker answers a ping, by its node and its queues.",
                ["hostname", "queues"], self.platform.workers_up(answering, now),
            )  # fmt: skip


def serve_metrics(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """On CONVEYOR_RELAY_METRICS_ADDRESS, in a thread of its own; a port taken is logged, and
    the relay relays on without its metrics."""
    if settings.relay_metrics_address == "off":
        return
    host, _, port = settings.relay_metrics_address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(PlatformCollector(settings, sessions, Platform()))
    try:
        start_http_server(int(port), addr=host, registry=registry)
    except OSError as exc:
        log.warning("The relay's metrics cannot be served on %s: %s.", settings.relay_metrics_address, exc)
        return
    log.info("The relay serves the platform's metrics on http://%s/metrics.", settings.relay_metrics_address)
