"""The beat schedule as data; a test checks that every entry names a registered task."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "purge-expired-idempotency-keys": {
        "task": "conveyor.maintenance.purge_expired_idempotency_keys",
        "schedule": 900.0,
        "options": {"queue": "maintenance"},
    },
    "purge-expired-dead-letters": {
        "task": "conveyor.maintenance.purge_expired_dead_letters",
        "schedule": 3600.0,
        "options": {"queue": "maintenance"},
    },
}

# Entries that run only once a setting names what they need: entry -> (setting, entry).
OPTIONAL_SCHEDULE: dict[str, tuple[str, dict[str, Any]]] = {
    "offsite-sync": (
        "offsite_sync_url",
        {
            "task": "conveyor.maintenance.submit_offsite_sync",
            "schedule": crontab(hour=2, minute=30),
            "options": {"queue": "maintenance"},
        },
    ),
}


def beat_schedule(settings: Any) -> dict[str, dict[str, Any]]:
    """The schedule, with each optional entry whose setting is set on ``settings``."""
    enabled = {name: entry for name, (needs, entry) in OPTIONAL_SCHEDULE.items() if getattr(settings, needs)}
    return {**BEAT_SCHEDULE, **enabled}
