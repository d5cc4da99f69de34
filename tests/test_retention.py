"""Retention's choice, a pure function: which backups of one target grandfather-father-son
keeps, and which it deletes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from jobs.upkeep.retention import Policy, Stored, expired

NOW = datetime(2025, 3, 31, 23, 0, tzinfo=UTC)


def daily(days: int, verified: bool = True, hour: int = 2) -> list[Stored]:
    """One backup a day for ``days`` days back from NOW, newest first."""
    return [Stored(uuid.uuid4(), (NOW - timedelta(days=n)).replace(hour=hour), verified) for n in range(days)]


def kept(backups: list[Stored], policy: Policy) -> list[Stored]:
    gone = set(expired(backups, policy))
    return [b for b in backups if b.id not in gone]


def test_the_newest_verified_backup_of_each_of_the_last_days_is_kept() -> None:
    backups = daily(10)

    assert kept(backups, Policy(daily=3, weekly=0, monthly=0)) == backups[:3]


def test_of_several_backups_in_one_day_only_the_newest_is_kept() -> None:
    morning, evening = daily(1, hour=2), daily(1, hour=20)

    assert kept(morning + evening, Policy(daily=7, weekly=0, monthly=0)) == evening


def test_weeks_and_months_keep_the_newest_backup_of_each_period() -> None:
    backups = daily(90)
    by_id = {b.id: b for b in kept(backups, Policy(daily=0, weekly=2, monthly=3))}

    # The newest of ISO weeks 14 (from Monday 31 March) and 13, and of March, February, January.
    days = sorted(b.started_at.date().isoformat() for b in by_id.values())
    assert days == ["2025-01-31", "2025-02-28", "2025-03-30", "2025-03-31"]


def test_the_periods_are_those_that_hold_a_backup_so_a_pause_loses_no_history() -> None:
    old = [Stored(uuid.uuid4(), NOW - timedelta(days=30 + n), True) for n in range(5)]

    assert kept(old, Policy(daily=3, weekly=0, monthly=0)) == old[:3]


def test_the_newest_verified_backup_is_kept_whatever_the_policy() -> None:
    backups = daily(3)

    assert kept(backups, Policy(daily=0, weekly=0, monthly=0)) == backups[:1]


def test_unverified_backups_older_than_the_newest_verified_one_are_deleted() -> None:
    failed_before = Stored(uuid.uuid4(), NOW - timedelta(days=2), False)
    good = Stored(uuid.uuid4(), NOW - timedelta(days=1), True)
    failed_after = Stored(uuid.uuid4(), NOW, False)

    assert expired([failed_after, good, failed_before], Policy(7, 4, 6)) == [failed_before.id]


def test_unverified_backups_never_fill_a_period_of_the_policy() -> None:
    verified = Stored(uuid.uuid4(), NOW - timedelta(days=5), True)
    unverified = daily(4, verified=False)
    older = Stored(uuid.uuid4(), NOW - timedelta(days=6), True)

    gone = expired([*unverified, verified, older], Policy(daily=2, weekly=0, monthly=0))

    assert gone == []


def test_nothing_is_deleted_while_no_backup_is_verified() -> None:
    assert expired(daily(20, verified=False), Policy(1, 1, 1)) == []


def test_what_is_deleted_comes_oldest_first() -> None:
    backups = daily(5)

    assert expired(backups, Policy(daily=1, weekly=0, monthly=0)) == [b.id for b in reversed(backups[1:])]
