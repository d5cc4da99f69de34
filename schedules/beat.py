"""The beat schedule as data: each entry fires an ordinary job. ``jobs.scheduler`` runs it.

Every entry can be moved or turned off with ``CONVEYOR_SCHEDULE_<NAME>`` (a cron line,
``@every <n>s|m|h`` or ``off``), read in ``CONVEYOR_BEAT_TIMEZONE``. ``grace_s`` is how long past
its period a schedule may go without a successful run before it is reported late; ``catch_up``
says what one beat does about slots missed while no beat was running: ``skip`` them, or
``run-once`` for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HOUR_S = 3600.0


@dataclass(frozen=True)
class Entry:
    job_type: str
    cron: str
    grace_s: float
    description: str
    catch_up: str = "skip"
    payload: Mapping[str, Any] = field(default_factory=dict)
    payload_settings: Mapping[str, str] = field(default_factory=dict)
    """Payload fields taken from a setting of that name."""
    needs: str | None = None
    """A setting that must be set (true) for the entry to run at all."""


SCHEDULE: dict[str, Entry] = {
    "backup": Entry(
        "backup",
        "0 2 * * *",
        grace_s=2 * HOUR_S,
        description="Dump the platform's database to storage and verify the copy.",
        catch_up="run-once",
        needs="has_postgresql",
    ),
    "restore-drill": Entry(
        "restore-drill",
        "0 3 * * 5#1",
        grace_s=24 * HOUR_S,
        description="Restore the newest verified backup into a scratch database and check it.",
        catch_up="run-once",
        needs="has_postgresql",
    ),
    "purge-idempotency-keys": Entry(
        "purge-idempotency-keys",
        "*/15 * * * *",
        grace_s=HOUR_S / 4,
        description="Forget idempotency keys past their time to live.",
    ),
    "purge-dead-letters": Entry(
        "purge-dead-letters",
        "0 * * * *",
        grace_s=HOUR_S,
        description="Delete dead letters past CONVEYOR_DEAD_LETTER_RETENTION_DAYS.",
    ),
    "offsite-sync": Entry(
        "s3-sync",
        "30 2 * * *",
        grace_s=6 * HOUR_S,
        description="Copy the platform's storage to CONVEYOR_OFFSITE_SYNC_URL; nothing is deleted there.",
        catch_up="run-once",
        payload_settings={"source": "storage_url", "destination": "offsite_sync_url"},
        needs="offsite_sync_url",
    ),
}
