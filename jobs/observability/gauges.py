"""The gauges the relay's metrics read at each scrape, from the database and the broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobs.broker.queues import QUEUES
from jobs.models import (
    FINISHED_STATES,
    Backup,
    DeadLetter,
    DeadLetterState,
    Heartbeat,
    Job,
    JobState,
    OutboxMessage,
    RestoreDrill,
)
from jobs.settings import Settings

UNFINISHED = sorted(set(JobState) - FINISHED_STATES)
PING_TIMEOUT_S = 1.0


def read(session: Session, settings: Settings, now: datetime) -> Iterator[Metric]:
    yield from _jobs(session, now)
    yield from _outbox(session, now)
    yield from _dead_letters(session)
    yield from _schedules(session, settings, now)
    yield from _backups(session)
    yield from _heartbeats(session)


def newest_heartbeats(session: Session) -> dict[str, datetime]:
    """When each component's newest process (beat, relay) last turned its loop."""
    newest = select(Heartbeat.component, func.max(Heartbeat.beat_at)).group_by(Heartbeat.component)
    return {component: at for component, at in session.execute(newest) if at}


def _heartbeats(session: Session) -> Iterator[Metric]:
    beats = [(component, at.timestamp()) for component, at in newest_heartbeats(session).items()]
    yield gauge(
        "conveyor_heartbeat_timestamp_seconds",
        "When a beat or relay last turned its loop.",
        ["component"],
        beats,
    )


def gauge(name: str, what: str, labels: list[str], rows: Any) -> GaugeMetricFamily:
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
    yield gauge("conveyor_jobs", "Jobs not yet finished, by state and type.", ["state", "type"], counted)
    waiting = waiting_jobs(session, now)
    queues = [*QUEUES, *sorted(set(waiting) - set(QUEUES))]
    ages = [
        (queue, (now - waiting[queue][1]).total_seconds() if queue in waiting else 0.0) for queue in queues
    ]
    yield gauge(
        "conveyor_queue_oldest_waiting_seconds",
        "Age of the oldest job waiting for a worker.",
        ["queue_name"],
        ages,
    )


def waiting_jobs(session: Session, now: datetime) -> dict[str, tuple[int, datetime]]:
    """Per queue with jobs waiting for a worker: how many, and since when the oldest (a job to
    run later waits from its ``run_at``, its ``queued_at``)."""
    oldest = session.execute(
        select(Job.queue, func.count(), func.min(Job.queued_at))
        .where(Job.state == JobState.QUEUED, Job.queued_at <= now)
        .group_by(Job.queue)
    )
    return {queue: (count, at) for queue, count, at in oldest if at}


def outbox_due(session: Session, now: datetime) -> tuple[int, datetime | None]:
    """How many outbox messages are due and not yet published, and since when the oldest."""
    backlog, oldest = session.execute(
        select(func.count(), func.min(OutboxMessage.available_at)).where(OutboxMessage.available_at <= now)
    ).one()
    return backlog, oldest


def _outbox(session: Session, now: datetime) -> Iterator[Metric]:
    backlog, oldest = outbox_due(session, now)
    yield gauge("conveyor_outbox_backlog", "Messages due and not yet published.", [], [(backlog,)])
    age = (now - oldest).total_seconds() if oldest else 0.0
    yield gauge("conveyor_outbox_oldest_age_seconds", "Age of the oldest due message.", [], [(age,)])


def _dead_letters(session: Session) -> Iterator[Metric]:
    waiting = session.execute(
        select(DeadLetter.queue, DeadLetter.reason, func.count())
        .where(DeadLetter.state == DeadLetterState.DEAD)
        .group_by(DeadLetter.queue, DeadLetter.reason)
    )
    yield gauge(
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
    yield gauge(
        "conveyor_schedule_last_success_timestamp_seconds", "When each schedule last ran a job that succeeded.",
        ["schedule"], success,
    )  # fmt: skip
    late = [(d["name"], int(d["late"])) for d in described]
    yield gauge(
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
    yield gauge(
        "conveyor_backup_last_verified_timestamp_seconds", "When each target's newest verified backup was verified.",
        ["target"], verified,
    )  # fmt: skip
    sizes = session.execute(
        select(Backup.target, Backup.size)
        .where(Backup.verified)
        .order_by(Backup.target, Backup.verified_at.desc())
    ).all()
    latest = {target: size for target, size in reversed(sizes)}
    yield gauge(
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
    yield gauge("conveyor_restore_drill_last_rto_seconds", "The newest restore drill's recovery time.", ["target"],
                 [(t, d.rto_s) for t, d in last.items()])  # fmt: skip
    yield gauge("conveyor_restore_drill_last_success", "1 when the newest restore drill passed, 0 when it failed.",
                 ["target"], [(t, int(d.ok)) for t, d in last.items()])  # fmt: skip


def queue_lengths(settings: Settings) -> Iterator[Metric]:
    from jobs.broker.config import connection as broker

    lengths = []
    with broker(settings) as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            try:
                lengths.append((queue, channel.queue_declare(queue, passive=True).message_count))
            except Exception:  # a queue no worker declared yet holds nothing
                lengths.append((queue, 0))
    yield gauge(
        "celery_queue_length", "Messages waiting in each queue of the broker.", ["queue_name"], lengths
    )


def answering(settings: Settings) -> set[str] | None:
    """The workers that answer a ping; None where the broker cannot broadcast (file system)."""
    if settings.is_embedded_broker:
        return None
    from jobs.broker.config import control_app

    with control_app(settings) as app:
        replies = app.control.ping(timeout=PING_TIMEOUT_S) or []
    return {name for reply in replies for name in reply}
