"""Checks read from the database: work waiting (queues, outbox, dead letters), the beat's and
relay's heartbeats, late schedules, and how old the newest verified backup is."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobs.dead_letters.queries import waiting_by
from jobs.doctor.report import FAIL, OK, SKIP, WARN, Check
from jobs.doctor.services import SERVICE_OF_QUEUE
from jobs.models import Backup, DeadLetter, RestoreDrill
from jobs.observability.gauges import newest_heartbeats, outbox_due, waiting_jobs
from jobs.observability.liveness import COMPONENTS, STALE_AFTER_S
from jobs.settings import Settings

QUEUE_WAIT_WARN, QUEUE_WAIT_FAIL = timedelta(minutes=5), timedelta(minutes=15)  # the alert's 15 min
OUTBOX_STALE = timedelta(seconds=60)


def queues(session: Session, settings: Settings, now: datetime) -> list[Check]:
    found = []
    for queue, (count, since) in sorted(waiting_jobs(session, now).items()):
        wait = now - since
        status = FAIL if wait > QUEUE_WAIT_FAIL else WARN if wait > QUEUE_WAIT_WARN else OK
        if status == OK:
            continue
        backlog = "OCR backlog: " if queue == "ocr" else ""
        message = f"{backlog}{count} jobs wait in {queue}, the oldest for {_minutes(wait)}."
        service = SERVICE_OF_QUEUE.get(queue, "worker")
        scale = (
            f"docker compose up -d --scale {service}=<more>, or `conveyor worker --queues {queue}` elsewhere"
        )
        found.append(
            Check("queues", status, message, f"{scale}; `conveyor jobs list --state queued` shows them")
        )
    return found or [Check("queues", OK, f"No job has waited over {_minutes(QUEUE_WAIT_WARN)} for a worker.")]


def outbox(session: Session, settings: Settings, now: datetime) -> list[Check]:
    count, oldest = outbox_due(session, now)
    if oldest is not None and now - oldest > OUTBOX_STALE:
        message = f"{count} messages wait to be published, the oldest for {_minutes(now - oldest)}: is a relay running?"
        return [
            Check(
                "outbox", FAIL, message, "conveyor doctor --check relay (on the relay's host), then its log"
            )
        ]
    return [Check("outbox", OK, f"{count} messages due, none older than {OUTBOX_STALE.seconds} s.")]


def dead_letters(session: Session, settings: Settings, now: datetime) -> list[Check]:
    waiting = waiting_by(session, DeadLetter.queue)
    if not waiting:
        return [Check("dead-letters", OK, "None waiting.")]
    counts = ", ".join(f"{count} from {queue}" for queue, count in sorted(waiting.items()))
    fix = "conveyor dead-letters stats, then `conveyor dead-letters requeue` or `purge`"
    return [Check("dead-letters", WARN, f"Waiting for an operator: {counts}.", fix)]


def heartbeats(session: Session, settings: Settings, now: datetime) -> list[Check]:
    newest = newest_heartbeats(session)
    found = []
    for component in COMPONENTS:
        at = newest.get(component)
        fix = f"docker compose up -d {component}, or `conveyor {component}`; its log says why it stopped"
        if at is None:
            found.append(Check(component, FAIL, f"No {component} has ever run against this database.", fix))
        elif (age := now - at).total_seconds() > STALE_AFTER_S:
            found.append(
                Check(
                    component, FAIL, f"The newest {component} last turned its loop {_minutes(age)} ago.", fix
                )
            )
        else:
            found.append(Check(component, OK, f"Turned its loop {age.total_seconds():.0f} s ago."))
    return found


def schedules(session: Session, settings: Settings, now: datetime) -> list[Check]:
    from jobs.scheduler.entries import schedules as resolved
    from jobs.scheduler.status import describe

    described = [describe(session, schedule, now) for schedule in resolved(settings).values()]
    late = [d["name"] for d in described if d["late"]]
    paused = [d["name"] for d in described if d["paused"]]
    if late:
        message = f"Late (no success for a period and its grace): {', '.join(late)}."
        return [
            Check("schedules", FAIL, message, f"conveyor schedules list; conveyor schedules run {late[0]}")
        ]
    shown = f" Paused: {', '.join(paused)}." if paused else ""
    return [
        Check("schedules", WARN if paused else OK, f"None late.{shown}", "conveyor schedules resume <name>")
    ]


def backups(session: Session, settings: Settings, now: datetime) -> list[Check]:
    from jobs.scheduler.entries import schedules as resolved

    schedule = resolved(settings)["backup"]
    if schedule.off or schedule.cadence is None:
        return [Check("backups", SKIP, f"The backup schedule does not run here: {schedule.off}.")]
    stale = schedule.cadence.period(now) + schedule.grace  # 26 h for the daily default
    newest = session.scalar(select(func.max(Backup.verified_at)).where(Backup.verified))
    run = "conveyor schedules run backup"
    if newest is None:
        return [Check("backups", WARN, "No verified backup yet.", run)]
    if now - newest > stale:
        return [Check("backups", FAIL, f"The newest verified backup is {_minutes(now - newest)} old.", run)]
    return [
        Check("backups", OK, f"The newest verified backup is {_minutes(now - newest)} old."),
        *_drill(session),
    ]


def _drill(session: Session) -> list[Check]:
    last = session.scalars(select(RestoreDrill).order_by(RestoreDrill.started_at.desc()).limit(1)).first()
    if last is None or last.ok:
        return []
    message = f"The newest restore drill (of {last.target}) failed: {last.error}"
    return [Check("restore-drill", FAIL, message, "conveyor backups drills; conveyor backups drill")]


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
