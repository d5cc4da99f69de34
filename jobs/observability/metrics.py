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

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jobs.models import Job, JobState, utcnow
from jobs.observability import gauges
from jobs.settings import Settings

log = logging.getLogger(__name__)

LAG = timedelta(seconds=5)
WORKER_FORGOTTEN = timedelta(minutes=15)  # a worker scaled away stops counting as down after this
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

    def workers_up(self, answering: set[str], now: datetime) -> list[tuple[str, int]]:
        """1 for each worker answering now, 0 for one seen within WORKER_FORGOTTEN that is not."""
        with self.lock:
            self.workers.update(dict.fromkeys(answering, now))
            self.workers = {name: at for name, at in self.workers.items() if now - at < WORKER_FORGOTTEN}
            return [(name, int(name in answering)) for name in sorted(self.workers)]

    def catch_up(self, session: Session, now: datetime) -> None:
        """Count what started and what ended from the last scrape up to ``now`` less LAG."""
        with self.lock:
            until, since = now - LAG, self.since
            self.since = until
            if since is None:
                return
            for queued in session.execute(
                select(Job.type, Job.queue, func.count())
                .where(Job.queued_at > since, Job.queued_at <= until)
                .group_by(Job.type, Job.queue)
            ):
                self.sent.labels(queued[0], queued[1]).inc(queued[2])
            for job in session.scalars(select(Job).where(Job.started_at > since, Job.started_at <= until)):
                self._started(job)
            for job in session.scalars(select(Job).where(Job.finished_at > since, Job.finished_at <= until)):
                self._ended(job)

    def _started(self, job: Job) -> None:
        labels = (job.type, job.queue)
        self.received.labels(*labels).inc()
        self.started.labels(*labels).inc()
        if job.queued_at and job.started_at:
            self.wait.labels(*labels).observe(max(0.0, (job.started_at - job.queued_at).total_seconds()))

    def _ended(self, job: Job) -> None:
        labels = (job.type, job.queue)
        if job.state == JobState.SUCCEEDED:
            self.succeeded.labels(*labels).inc()
        elif job.state == JobState.DEAD:
            self.failed.labels(*labels).inc()
        if job.attempts > 1:
            self.retried.labels(*labels).inc(job.attempts - 1)
        if job.started_at and job.finished_at:
            self.runtime.labels(*labels).observe(max(0.0, (job.finished_at - job.started_at).total_seconds()))
        result = job.result if isinstance(job.result, dict) else {}
        if job.type == "import":
            self.rows.inc(int(result.get("rows_read") or 0))
        elif job.type == "ocr":
            self.pages.inc(int(result.get("pages") or 0))


class PlatformCollector(Collector):
    """Gauges read from the database and the broker at each scrape."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], platform: Platform):
        self.settings, self.sessions, self.platform = settings, sessions, platform

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self.sessions() as session:
            self.platform.catch_up(session, now)
            yield from self.platform.registry.collect()
            yield from gauges.read(session, self.settings, now)
        yield from gauges.queue_lengths(self.settings)
        answering = gauges.answering(self.settings)
        if answering is not None:
            yield gauges.gauge(
                "celery_worker_up", "1 while a worker answers a ping.", ["hostname"],
                self.platform.workers_up(answering, now),
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
