"""The schedule as this deployment runs it: ``schedules.beat`` with the settings' overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jobs.errors import SettingsError
from jobs.scheduler.cadence import Cadence, parse_cadence
from jobs.settings import SCHEDULE_PREFIX, Settings
from schedules.beat import SCHEDULE, Entry

CATCH_UP = ("skip", "run-once")


@dataclass(frozen=True)
class Schedule:
    name: str
    entry: Entry
    cron: str
    cadence: Cadence | None
    off: str | None
    """Why the schedule does not run here, or None when it does."""

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.entry.grace_s)

    def payload(self, settings: Settings) -> dict[str, Any]:
        taken = {key: getattr(settings, name) for key, name in self.entry.payload_settings.items()}
        return {**self.entry.payload, **taken}


def schedules(settings: Settings) -> dict[str, Schedule]:
    return {name: _resolved(name, entry, settings) for name, entry in SCHEDULE.items()}


def _resolved(name: str, entry: Entry, settings: Settings) -> Schedule:
    cron = settings.schedules.get(name, entry.cron)
    cadence = parse_cadence(cron, settings.beat_timezone)
    off = None
    if cadence is None:
        off = f"turned off by {setting_name(name)}"
    elif entry.needs and not getattr(settings, entry.needs):
        off = f"needs {_needed(entry.needs)}"
    return Schedule(name, entry, cron, cadence, off)


def _needed(attribute: str) -> str:
    if attribute == "has_postgresql":
        return "a PostgreSQL database (CONVEYOR_DATABASE_URL)"
    return f"CONVEYOR_{attribute.upper()}"


def setting_name(schedule: str) -> str:
    return SCHEDULE_PREFIX + schedule.upper().replace("-", "_")


def check_overrides(found: dict[str, str]) -> None:
    """Fail fast on a misspelt schedule or a cron line that cannot run."""
    for name, text in found.items():
        if name not in SCHEDULE:
            raise SettingsError(
                f"{setting_name(name)} names no schedule; the schedules are {', '.join(SCHEDULE)}."
            )
        try:
            parse_cadence(text)
        except ValueError as exc:
            raise SettingsError(f"{setting_name(name)}={text!r} is not valid: {exc}") from None
