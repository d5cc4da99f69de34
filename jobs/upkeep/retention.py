"""Which backups of one target to delete: grandfather-father-son over the verified ones.

The periods are those that hold a verified backup, as restic's ``--keep-daily`` counts them,
not the calendar's last N: a target whose backups stopped for a fortnight keeps its history
rather than losing every daily one at once. Days, ISO weeks and months are UTC's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Stored:
    """What retention needs to know of one backup."""

    id: uuid.UUID
    started_at: datetime
    verified: bool


@dataclass(frozen=True)
class Policy:
    daily: int
    weekly: int
    monthly: int


def _day(at: datetime) -> Hashable:
    return at.astimezone(UTC).date()


def _week(at: datetime) -> Hashable:
    return at.astimezone(UTC).isocalendar()[:2]


def _month(at: datetime) -> Hashable:
    utc = at.astimezone(UTC)
    return (utc.year, utc.month)


def expired(backups: Sequence[Stored], policy: Policy) -> list[uuid.UUID]:
    """The backups to delete, oldest first. Kept: the newest verified backup always; the newest
    verified one of each of the last ``daily`` days, ``weekly`` weeks and ``monthly`` months
    that have one; and every unverified backup newer than the newest verified one (a failure
    to look into). With no verified backup nothing is deleted."""
    verified = sorted((b for b in backups if b.verified), key=lambda b: b.started_at, reverse=True)
    if not verified:
        return []
    kept = {verified[0].id}
    for period, count in ((_day, policy.daily), (_week, policy.weekly), (_month, policy.monthly)):
        kept |= _newest_per_period(verified, period, count)
    newest = verified[0].started_at
    gone = [b for b in backups if b.id not in kept and (b.verified or b.started_at < newest)]
    return [b.id for b in sorted(gone, key=lambda b: b.started_at)]


def _newest_per_period(
    verified: Sequence[Stored], period: Callable[[datetime], Hashable], count: int
) -> set[uuid.UUID]:
    """The first (newest) backup of each of the ``count`` newest periods; ``verified`` is
    newest first."""
    chosen: dict[Hashable, uuid.UUID] = {}
    for backup in verified:
        key = period(backup.started_at)
        if key not in chosen:
            if len(chosen) == count:
                break
            chosen[key] = backup.id
    return set(chosen.values())
