"""When a schedule's slots fall: a cron line in the beat's time zone, or ``@every <n>s|m|h``.

A slot is a point in time both beats compute alike from the text alone (``@every`` counts from
the Unix epoch), so the unique (schedule, slot) key can tell whether a slot was already fired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVERY = re.compile(r"@every\s+(\d+)\s*([smh])")
UNIT_S = {"s": 1, "m": 60, "h": 3600}
TICK = timedelta(microseconds=1)
OFF = "off"
MAX_EVERY_S = 366 * 24 * 3600


class Cadence:
    text: str

    def latest(self, now: datetime) -> datetime:
        """The last slot at or before ``now``."""
        raise NotImplementedError

    def after(self, slot: datetime) -> datetime:
        """The first slot after ``slot``."""
        raise NotImplementedError

    def period(self, now: datetime) -> timedelta:
        """How far apart the slots around ``now`` are."""
        latest = self.latest(now)
        return self.after(latest) - latest


@dataclass(frozen=True)
class Every(Cadence):
    text: str
    seconds: int

    def latest(self, now: datetime) -> datetime:
        elapsed = (now - EPOCH) // timedelta(seconds=self.seconds)
        return EPOCH + elapsed * timedelta(seconds=self.seconds)

    def after(self, slot: datetime) -> datetime:
        return self.latest(slot) + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Cron(Cadence):
    text: str
    zone: str

    def latest(self, now: datetime) -> datetime:
        """Stepped forward from cronsim's reverse answer, which can land a day early around a
        fall-back to winter time."""
        local = (now + TICK).astimezone(ZoneInfo(self.zone))
        slot = next(CronSim(self.text, local, reverse=True)).astimezone(UTC)
        while (following := self.after(slot)) <= now:
            slot = following
        return slot

    def after(self, slot: datetime) -> datetime:
        local = slot.astimezone(ZoneInfo(self.zone))
        return next(CronSim(self.text, local)).astimezone(UTC)


def parse_cadence(text: str, zone: str = "UTC") -> Cadence | None:
    """The cadence ``text`` names, None for ``off``; raises ValueError saying what is wrong."""
    text = " ".join(text.split())
    if text == OFF:
        return None
    every = EVERY.fullmatch(text)
    if every:
        seconds = int(every[1]) * UNIT_S[every[2]]
        if not 0 < seconds <= MAX_EVERY_S:
            raise ValueError("@every needs a period above zero and at most a year")
        return Every(text, seconds)
    try:
        CronSim(text, datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"{text!r} is not a cron line, '@every <n>s|m|h' or 'off': {exc}") from None
    return Cron(text, zone)
