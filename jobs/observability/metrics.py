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
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jobs.broker.queues import QUEUES
from jobs.models import (
    FINISHED_STATES,
    Backup,
    DeadLetter,
    Job,
    JobState,
    OutboxMessage,
    RestoreDrill,
    utcnow,
)
from jobs.settings import Settings

log = logging.getLogger(__name__)

LAG = timedelta(seconds=5)
WORKER_FORGOTTEN = timedelta(minutes=15)  # a worker scaled away stops counting as down after this
PING_TIMEOUT_S = 1.0
RUNTIME_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)
UNFINISHED = sorted(set(JobState) - FINISHED_STATES)


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
            yield from _jobs(session, now)
            yield from _outbox(session, now)
            yield from _dead_letters(session)
            yield from _schedules(session, self.settings, now)
            yield from _backups(session)
        yield from _queue_lengths(self.settings)
        answering = _answering(self.settings)
        if answering is not None:
            yield _gauge(
                "celery_worker_up", "1 while a worker answers a ping.", ["hostname"],
                self.platform.workers_up(answering, now),
            )  # fmt: skip


def _gauge(name: str, what: str, labels: list[str], rows: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, what, labels=labels)
    for *values, value in rows:
        family.add_metric([str(v) for v in values], float(value))
    return family


def _jobs(session: Session, now: datetime) -> Iterator[Metric]:
    counted = session.execute(
        select(Job.state, Job.type, func.count())
        .where(Job.state.in_(UNFINISHED))
        .group_by(Job.state, Job.type)
    )
    yield _gauge("conveyor_jobs", "Jobs not yet finished, by state and type.", ["state", "type"], counted)
    oldest = session.execute(
        select(Job.queue, func.min(Job.queued_at))
        .where(Job.state == JobState.QUEUED, Job.queued_at.is_not(None))
        .group_by(Job.queue)
    )
    ages = [(queue, (now - at).total_seconds()) for queue, at in oldest if at]
    ages += [(queue, 0.0) for queue in QUEUES if queue not in {q for q, _ in ages}]
    yield _gauge(
        "conveyor_queue_oldest_waiting_seconds",
        "Age of the oldest job waiting for a worker.",
        ["queue_name"],
        ages,
    )


def _outbox(session: Session, now: datetime) -> Iterator[Metric]:
    backlog, oldest = session.execute(
        select(func.count(), func.min(OutboxMessage.available_at)).where(OutboxMessage.available_at <= now)
    ).one()
    yield _gauge("conveyor_outbox_backlog", "Messages due and not yet published.", [], [(backlog,)])
    age = (now - oldest).total_seconds() if oldest else 0.0
    yield _gauge("conveyor_outbox_oldest_age_seconds", "Age of the oldest due message.", [], [(age,)])


def _dead_letters(session: Session) -> Iterator[Metric]:
    waiting = session.execute(
        select(DeadLetter.queue, DeadLetter.reason, func.count())
        .where(DeadLetter.state == "dead")
        .group_by(DeadLetter.queue, DeadLetter.reason)
    )
    yield _gauge(
        "conveyor_dead_letters_waiting",
        "Dead letters not yet requeued or discarded.",
        ["queue_name", "reason"],
        waiting,
    )


def _schedules(session: Session, settings: Settings, now: datetime) -> Iterator[Metric]:
    from jobs.scheduler.entries import schedules
    from jobs.scheduler.status import describe

    described = [describe(session, schedule, now) for schedule in schedules(settings).values()]
    success = [(d["name"], d["last_success"].timestamp()) for d in described if d["last_success"]]
    yield _gauge(
        "conveyor_schedule_last_success_timestamp_seconds", "When each schedule last ran a job that succeeded.",
        ["schedule"], success,
    )  # fmt: skip
    late = [(d["name"], int(d["late"])) for d in described]
    yield _gauge(
        "conveyor_schedule_late",
        "1 when a schedule is late: no success for a period and its grace.",
        ["schedule"],
        late,
    )


def _backups(session: Session) -> Iterator[Metric]:
    newest = (
        select(Backup.target, func.max(Backup.verified_at)).where(Backup.verified).group_by(Backup.target)
    )
    verified = [(target, at.timestamp()) for target, at in session.execute(newest) if at]
    yield _gauge(
        "conveyor_backup_last_verified_timestamp_seconds", "When each target's newest verified backup was verified.",
        ["target"], verified,
    )  # fmt: skip
    sizes = session.execute(
        select(Backup.target, Backup.size)
        .where(Backup.verified)
        .order_by(Backup.target, Backup.verified_at.desc())
    ).all()
    latest = {target: size for target, size in reversed(sizes)}
    yield _gauge(
        "conveyor_backup_last_verified_size_bytes",
        "Size of each target's newest verified backup.",
        ["target"],
        latest.items(),
    )
    drills = session.execute(
        select(RestoreDrill).order_by(RestoreDrill.started_at.desc()).limit(50)
    ).scalars()
    last: dict[str, RestoreDrill] = {}
    for drill in drills:
        last.setdefault(drill.target, drill)
    yield _gauge("conveyor_restore_drill_last_rto_seconds", "The newest restore drill's recovery time.", ["target"],
                 [(t, d.rto_s) for t, d in last.items()])  # fmt: skip
    yield _gauge("conveyor_restore_drill_last_success", "1 when the newest restore drill passed, 0 when it failed.",
                 ["target"], [(t, int(d.ok)) for t, d in last.items()])  # fmt: skip


def _queue_lengths(settings: Settings) -> Iterator[Metric]:
    from kombu import Connection

    lengths = []
    with Connection(settings.broker_url, connect_timeout=3) as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            try:
                lengths.append((queue, channel.queue_declare(queue, passive=True).message_count))
            except Exception:  # a queue no worker declared yet holds nothing
                lengths.append((queue, 0))
    yield _gauge(
        "celery_queue_length", "Messages waiting in each queue of the broker.", ["queue_name"], lengths
    )


def _answering(settings: Settings) -> set[str] | None:
    """The workers that answer a ping; None where the broker cannot broadcast (file system)."""
    if settings.is_embedded_broker:
        return None
    from celery import Celery

    app = Celery(broker=settings.broker_url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=PING_TIMEOUT_S) or []
    finally:
        app.close()
    return {name for reply in replies for name in reply}


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
