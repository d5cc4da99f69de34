"""The beat schedule as data; a test checks that every entry names a registered task."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "purge-expired-idempotency-keys": {
        "task": "conveyor.maintenance.purge_expired_idempotency_keys",
        "schedule": 900.0,
        "options": {"queue": "maintenance"},
    },
}
