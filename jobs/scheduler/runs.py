"""Firing a slot: its run row and its job in one transaction, once per (schedule, slot)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jobs import service
from jobs.db import insert_unless_present
from jobs.errors import ConflictError, InvalidJobError, ScheduleNotFoundError
from jobs.models import FINISHED_STATES, Job, ScheduleRun, ScheduleState, utcnow
from jobs.scheduler.entries import Schedule
from jobs.settings import Settings

log = logging.getLogger(__name__)

SCHEDULED, CATCH_UP, MANUAL = "schedule", "catch-up", "manual"


@dataclass(frozen=True)
class Slot:
    at: datetime
    trigger: str
    skipped: str | None = None
    """Why this slot is recorded without a job (the catch-up policy ``skip``)."""


def state_of(session: Session, name: str, *, lock: bool = False) -> ScheduleState:
    """The schedule's state row, made on first sight; ``lock`` holds it to the transaction's end,
    so fires and pauses of one schedule take turns (SQLite's writers always do)."""
    session.execute(insert_unless_present(session, ScheduleState, name=name, paused=False, since=utcnow()))
    state = session.get(ScheduleState, name, populate_existing=True, with_for_update=lock)
    assert state is not None
    return state


def baselines(session: Session, names: list[str]) -> dict[str, datetime]:
    """Per schedule, the moment from which a slot is new: its last fired or skipped slot, or
    when beat first knew it, or when it was last resumed, whichever is latest."""
    newest = (
        select(ScheduleRun.schedule, func.max(ScheduleRun.slot))
        .where(ScheduleRun.trigger != MANUAL)
        .group_by(ScheduleRun.schedule)
    )
    last: dict[str, datetime] = {name: slot for name, slot in session.execute(newest)}
    states = {s.name: s for s in session.scalars(select(ScheduleState).where(ScheduleState.name.in_(names)))}
    found = {}
    for name in names:
        state = states.get(name) or state_of(session, name)
        marks = [state.since, state.changed_at, last.get(name)]
        found[name] = max(mark for mark in marks if mark is not None)
    return found


def fire(
    session: Session, settings: Settings, schedule: Schedule, slot: Slot, fired_by: str
) -> ScheduleRun | None:
    """Record ``slot``'s run and submit its job; None if another beat fired the slot first, or
    the schedule was paused meanwhile."""
    if state_of(session, schedule.name, lock=True).paused and slot.trigger != MANUAL:
        return None
    skipped = slot.skipped or _still_running(session, schedule.name)
    if skipped and slot.trigger == MANUAL:
        raise ConflictError(f"Schedule {schedule.name} was not run: {skipped}")
    run_id = uuid.uuid4()
    values = dict(schedule=schedule.name, slot=slot.at, trigger=slot.trigger, fired_by=fired_by)
    inserted = session.execute(
        insert_unless_present(
            session, ScheduleRun, id=run_id, fired_at=utcnow(), skipped=skipped, **values
        ).returning(ScheduleRun.id)
    ).scalar()
    if inserted is None:
        return None
    if not skipped:
        _submit(session, settings, schedule, run_id, manual=slot.trigger == MANUAL)
    return session.get(ScheduleRun, run_id)


def _submit(
    session: Session, settings: Settings, schedule: Schedule, run_id: uuid.UUID, *, manual: bool
) -> None:
    """A job beat cannot submit is recorded on its run (and logged); one an operator asked
    for is refused to them instead."""
    submission = service.Submission(
        schedule.entry.job_type,
        schedule.payload(settings),
        correlation_id=f"schedule:{schedule.name}",
        causation_id=str(run_id),
    )
    try:
        job = service.submit(session, settings, submission)
    except InvalidJobError as exc:
        if manual:
            raise
        note = f"its job was refused: {exc} {exc.errors}"
        log.error("Schedule %s fired, but %s", schedule.name, note)
        session.execute(update(ScheduleRun).where(ScheduleRun.id == run_id).values(skipped=note))
        return
    session.execute(update(ScheduleRun).where(ScheduleRun.id == run_id).values(job_id=job.id))
    log.info("Schedule %s fired job %s (%s).", schedule.name, job.id, schedule.entry.job_type)


def _still_running(session: Session, name: str) -> str | None:
    """A schedule never has two runs at once: a backup still running at the next slot is
    skipped, not doubled."""
    running = session.execute(
        select(Job.id, Job.state)
        .join(ScheduleRun, ScheduleRun.job_id == Job.id)
        .where(ScheduleRun.schedule == name, Job.state.not_in(list(FINISHED_STATES)))
        .limit(1)
    ).first()
    return f"its previous run, job {running.id}, is still {running.state}." if running else None


def run_now(session: Session, settings: Settings, schedule: Schedule, actor: str) -> ScheduleRun:
    """Fire the schedule at once, as an operator asked; refused while it is off or running."""
    if schedule.off:
        raise ConflictError(f"Schedule {schedule.name} is off here: it {schedule.off}.")
    run = fire(session, settings, schedule, Slot(utcnow(), MANUAL), fired_by=actor)
    assert run is not None
    return run


def set_paused(session: Session, schedule: str, paused: bool, actor: str) -> ScheduleState:
    """Pause or resume; a resume starts the schedule at its next slot (what passed while paused
    is not caught up). Asking for the state it is in changes nothing."""
    state = state_of(session, schedule, lock=True)
    if state.paused != paused:
        state.paused, state.changed_by, state.changed_at = paused, actor, utcnow()
    return state


def known(schedules: dict[str, Schedule], name: str) -> Schedule:
    if name not in schedules:
        raise ScheduleNotFoundError(
            f"No schedule is named {name!r}; the schedules are {', '.join(schedules)}."
        )
    return schedules[name]
