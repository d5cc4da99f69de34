"""Beat's rules, in-process: when slots fall, what a missed slot becomes, and that one slot is
fired once however many beats try."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from jobs.db import Database
from jobs.errors import ConflictError
from jobs.models import Job, ScheduleRun, utcnow
from jobs.scheduler.cadence import parse_cadence
from jobs.scheduler.entries import Schedule, schedules
from jobs.scheduler.loop import due
from jobs.scheduler.runs import CATCH_UP, MANUAL, SCHEDULED, Slot, baselines, fire, run_now, set_paused
from schedules.beat import Entry

WINDOW = timedelta(seconds=10)
AT = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)  # a Friday


def schedule(cron: str, catch_up: str = "skip", zone: str = "UTC") -> Schedule:
    entry = Entry("purge-idempotency-keys", cron, grace_s=60, description="test", catch_up=catch_up)
    return Schedule("test", entry, cron, parse_cadence(cron, zone), None)


def test_a_cron_line_is_read_in_the_beats_time_zone() -> None:
    paris = parse_cadence("0 2 * * *", "Europe/Paris")
    assert paris is not None
    assert paris.after(AT) == datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    assert paris.latest(AT) == datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


def test_the_last_slot_is_right_across_the_fall_back_to_winter_time() -> None:
    paris = parse_cadence("30 2 * * *", "Europe/Paris")
    assert paris is not None
    assert paris.latest(datetime(2025, 10, 26, 1, 0, tzinfo=UTC)) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)


def test_the_first_friday_of_the_month_and_every_n_seconds() -> None:
    drill, every = parse_cadence("0 3 * * 5#1"), parse_cadence("@every 15s")
    assert drill is not None and every is not None
    assert drill.after(AT) == datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    assert drill.after(drill.after(AT)) == datetime(2027, 1, 1, 3, 0, tzinfo=UTC)
    assert every.latest(AT + timedelta(seconds=20)) == AT + timedelta(seconds=15)
    assert every.period(AT) == timedelta(seconds=15)
    assert parse_cadence("off") is None
    with pytest.raises(ValueError, match="not a cron line"):
        parse_cadence("every day")


def test_a_slot_just_passed_is_due_once_and_then_never_again() -> None:
    hourly = schedule("0 * * * *")
    assert due(hourly, AT - timedelta(hours=1), AT + timedelta(seconds=1), WINDOW) == [Slot(AT, SCHEDULED)]
    assert due(hourly, AT, AT + timedelta(seconds=2), WINDOW) == []


def test_slots_missed_while_no_beat_ran_are_skipped_as_one_recorded_slot() -> None:
    quarterly = schedule("*/15 * * * *")
    slots = due(quarterly, AT - timedelta(hours=5), AT + timedelta(minutes=1), WINDOW)
    assert [(s.at, s.trigger) for s in slots] == [(AT, CATCH_UP)]
    assert slots[0].skipped and "catch-up policy: skip" in slots[0].skipped


def test_run_once_fires_a_single_catch_up_run_for_all_missed_slots() -> None:
    daily = schedule("0 2 * * *", catch_up="run-once")
    slots = due(daily, AT - timedelta(days=5), AT + timedelta(hours=3), WINDOW)
    assert slots == [Slot(AT, CATCH_UP)]


def test_slots_missed_for_less_than_a_takeover_all_fire_late() -> None:
    every = schedule("@every 1s")
    slots = due(every, AT, AT + timedelta(seconds=4.5), WINDOW)
    assert [s.at for s in slots] == [AT + timedelta(seconds=n) for n in (1, 2, 3, 4)]


def test_two_beats_firing_one_slot_submit_one_job(database: Database) -> None:
    purge = schedules(database.settings)["purge-idempotency-keys"]
    slot = Slot(utcnow().replace(microsecond=0), SCHEDULED)
    with database.sessions.begin() as first, database.sessions.begin() as second:
        assert fire(first, database.settings, purge, slot, fired_by="a") is not None
        first.commit()
        assert fire(second, database.settings, purge, slot, fired_by="b") is None
    with database.sessions() as session:
        runs = session.scalars(select(ScheduleRun)).all()
        jobs = session.scalars(select(Job)).all()
    assert len(runs) == 1 and [job.causation_id for job in jobs] == [str(runs[0].id)]
    assert (
        jobs[0].type == "purge-idempotency-keys"
        and jobs[0].correlation_id == "schedule:purge-idempotency-keys"
    )


def test_a_paused_schedule_fires_nothing_and_resuming_does_not_catch_up(database: Database) -> None:
    purge = schedules(database.settings)["purge-idempotency-keys"]
    with database.sessions.begin() as session:
        set_paused(session, purge.name, True, actor="test")
        assert fire(session, database.settings, purge, Slot(utcnow(), SCHEDULED), fired_by="a") is None
        set_paused(session, purge.name, False, actor="test")
        resumed = baselines(session, [purge.name])[purge.name]
    assert utcnow() - resumed < timedelta(seconds=5)


def test_an_operator_runs_a_schedule_now_but_never_beside_its_unfinished_run(database: Database) -> None:
    purge = schedules(database.settings)["purge-idempotency-keys"]
    with database.sessions.begin() as session:
        run = run_now(session, database.settings, purge, actor="test")
    assert run.trigger == MANUAL and run.job_id is not None
    with database.sessions.begin() as session, pytest.raises(ConflictError, match="still queued"):
        run_now(session, database.settings, purge, actor="test")


def test_a_schedule_that_is_off_cannot_be_run(database: Database) -> None:
    settings = dataclasses.replace(database.settings, schedules={"purge-dead-letters": "off"})
    with database.sessions.begin() as session, pytest.raises(ConflictError, match="turned off by"):
        run_now(session, settings, schedules(settings)["purge-dead-letters"], actor="test")
