"""Storage job types: ``s3-sync`` makes a destination prefix a copy of a source prefix."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from jobs.catalogue.base import JobType
from jobs.errors import InvalidInputError
from jobs.settings import Settings
from jobs.storage import allowed_location
from jobs.storage.urls import Location, parse_url

COMPARE_MODES = ("size-mtime", "checksum")
MAX_TRANSFERS = 64


class StorageUrl(fields.String):
    """A ``file:///abs/dir`` or ``s3://bucket/prefix`` URL, checked for its form."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        url: str = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_url(url)
        except InvalidInputError as exc:
            raise ValidationError(str(exc)) from None
        return url


GLOB = fields.String(validate=validate.Length(min=1, max=1024))


class S3SyncPayload(Schema):
    source = StorageUrl(required=True, metadata={"example": "s3://seeds/photos"})
    destination = StorageUrl(required=True, metadata={"example": "s3://offsite/photos"})
    delete = fields.Boolean(load_default=False)
    dry_run = fields.Boolean(load_default=False)
    compare = fields.String(load_default="size-mtime", validate=validate.OneOf(COMPARE_MODES))
    # ``Schema.exclude`` is taken, hence the data keys, put back after loading: the payload is
    # stored as loaded, and loaded again by the worker.
    included = fields.List(GLOB, data_key="include", load_default=list)
    excluded = fields.List(GLOB, data_key="exclude", load_default=list)

    @post_load
    def _as_sent(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["include"], data["exclude"] = data.pop("included"), data.pop("excluded")
        return data

    transfers = fields.Integer(load_default=8, validate=validate.Range(min=1, max=MAX_TRANSFERS))

    @validates_schema
    def _apart(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "source" not in data or "destination" not in data:
            return
        source, destination = parse_url(data["source"]), parse_url(data["destination"])
        if source.contains(destination) or destination.contains(source):
            raise ValidationError(_overlap(source, destination), "destination")


def _overlap(source: Location, destination: Location) -> str:
    if source == destination:
        return "The destination is the source."
    if source.contains(destination):
        return "The destination lies inside the source: each sync would copy its own copies."
    return "The source lies inside the destination: a sync would overwrite or delete its own source."


def check_sync(payload: dict[str, Any], settings: Settings) -> None:
    """What only the deployment can say: a ``file://`` side must be in ``CONVEYOR_FILE_ROOTS``,
    and never the platform's own data folder."""
    errors = {}
    for side in ("source", "destination"):
        try:
            allowed_location(payload[side], settings)
        except InvalidInputError as exc:
            errors[side] = [str(exc)]
    errors.update(_backups_untouched(payload, settings))
    if errors:
        raise ValidationError(errors)


def _backups_untouched(payload: dict[str, Any], settings: Settings) -> dict[str, list[str]]:
    """No sync writes into CONVEYOR_BACKUP_URL (the manifest would name objects it replaced or
    deleted) or reads from inside it; a source that holds it, the offsite copy of the whole
    storage, may."""
    backups = parse_url(settings.backup_url)
    source, destination = parse_url(payload["source"]), parse_url(payload["destination"])
    found = {}
    if destination.contains(backups) or backups.contains(destination):
        found["destination"] = ["The destination overlaps the platform's backups (CONVEYOR_BACKUP_URL)."]
    if backups.contains(source):
        found["source"] = [
            "The source lies inside the platform's backups; restore them with `conveyor backups`."
        ]
    return found


JOB_TYPES = (
    JobType(
        "s3-sync",
        "conveyor.storage.sync_prefix",
        "maintenance",
        S3SyncPayload,
        "Makes `destination` a copy of `source` (either s3:// or file://), as `rclone sync` "
        "does: copies what is missing or differs (by size and mtime, or by `checksum`), and with "
        "`delete` removes what the source no longer has, only after a pass with no errors.",
        check_sync,
    ),
)
