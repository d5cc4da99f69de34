"""The beat schedule as data; a test checks that every entry names a registered task."""

from __future__ import annotations

from typing import Any

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
