"""The platform's own upkeep as job types, so beat's runs have history, retries and dead letters:
the purges, backups of PostgreSQL databases, their verification, restores and restore drills."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from marshmallow import Schema, ValidationError, fields, validate

from jobs.catalogue.base import JobType
from jobs.settings import Settings

PLATFORM = "platform"
"""The backup target that is the platform's own database."""
PURGE_BATCH = 5000
NO_PASSWORD = (
    "Leave the password out of the URL: a job's payload is shown to every jobs:read token. "
    "Give the workers a ~/.pgpass (or PGPASSFILE) entry for that database instead."
)


class BackupId(fields.String):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise ValidationError("Not a backup id: backup ids are UUIDs.") from None


class PurgeKeysPayload(Schema):
    batch_size = fields.Integer(load_default=PURGE_BATCH, validate=validate.Range(min=1, max=100_000))


class PurgeDeadLettersPayload(Schema):
    pass


class TargetPayload(Schema):
    target = fields.String(load_default=PLATFORM, metadata={"example": PLATFORM})


class VerifyPayload(Schema):
    backup_id = BackupId(required=True)


class RestorePayload(Schema):
    backup_id = BackupId(required=True)
    into = fields.String(required=True, metadata={"example": "postgresql://127.0.0.1/scratch"})


def target_urls(settings: Settings) -> dict[str, str]:
    """Every database a backup may be taken of, by target name."""
    platform = {PLATFORM: settings.database_url} if settings.has_postgresql else {}
    return {**platform, **settings.backup_targets}


def check_target(payload: dict[str, Any], settings: Settings) -> None:
    known = target_urls(settings)
    if payload["target"] not in known:
        named = (
            ", ".join(known) or "none: the platform's database is SQLite and CONVEYOR_BACKUP_TARGETS is empty"
        )
        raise ValidationError(
            {"target": [f"Unknown backup target {payload['target']!r}; the targets are {named}."]}
        )


def same_database(one: str, other: str) -> bool:
    """Whether two PostgreSQL URLs name one database by their text (host, port and name; not the
    user). The restore checks again against the servers themselves (``jobs.upkeep.backups``)."""
    a, b = urlsplit(one), urlsplit(other)
    return (a.hostname, a.port or 5432, a.path.strip("/")) == (b.hostname, b.port or 5432, b.path.strip("/"))


def check_restore(payload: dict[str, Any], settings: Settings) -> None:
    into = payload["into"]
    try:
        parts = urlsplit(into)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValidationError({"into": [f"Not a URL: {exc}."]}) from None
    if not parts.scheme.startswith("postgresql") or not parts.path.strip("/") or not parts.hostname:
        raise ValidationError({"into": ["Must be a postgresql://host/database URL."]})
    query = set(parse_qs(parts.query))
    if parts.password is not None or query & {"password", "sslpassword"}:
        raise ValidationError({"into": [NO_PASSWORD]})
    if query & {"host", "hostaddr", "port", "dbname", "service"}:
        raise ValidationError(
            {"into": ["Name the host, port and database in the URL itself, not its query."]}
        )
    live = [name for name, url in target_urls(settings).items() if same_database(url, into)]
    if live:
        raise ValidationError(
            {"into": [f"Refusing to restore over the live database of target {live[0]!r}."]}
        )


JOB_TYPES = (
    JobType(
        "purge-idempotency-keys",
        "conveyor.maintenance.purge_expired_idempotency_keys",
        "maintenance",
        PurgeKeysPayload,
        "Forgets idempotency keys past their time to live, `batch_size` per short transaction.",
        scope="ops",
    ),
    JobType(
        "purge-dead-letters",
        "conveyor.maintenance.purge_expired_dead_letters",
        "maintenance",
        PurgeDeadLettersPayload,
        "Deletes dead letters older than CONVEYOR_DEAD_LETTER_RETENTION_DAYS, with an audit entry each.",
        scope="ops",
    ),
    JobType(
        "backup",
        "conveyor.backups.backup_database",
        "maintenance",
        TargetPayload,
        "Streams `pg_dump --format=custom` of `target` into CONVEYOR_BACKUP_URL, then reads it back "
        "to verify it; only a verified backup counts, and retention runs after one.",
        check_target,
        scope="ops",
    ),
    JobType(
        "verify-backup",
        "conveyor.backups.verify_backup",
        "maintenance",
        VerifyPayload,
        "Reads a stored backup back: its sha256 must match and `pg_restore --list` must parse it.",
        scope="ops",
    ),
    JobType(
        "restore-backup",
        "conveyor.backups.restore_backup",
        "maintenance",
        RestorePayload,
        "Restores a backup into the database at `into`, never a target's live database.",
        check_restore,
        scope="admin",
    ),
    JobType(
        "restore-drill",
        "conveyor.backups.drill_restore",
        "maintenance",
        TargetPayload,
        "Restores the newest verified backup of `target` into a scratch database and checks every "
        "table and row count and the migration head; records the measured RTO.",
        check_target,
        scope="ops",
    ),
)
