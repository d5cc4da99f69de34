"""The payload field later job types name their input with: an uploaded file or a storage URL."""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validates_schema

from jobs.errors import InvalidInputError
from jobs.storage.urls import split_object

INPUT_DESCRIPTION = 'An uploaded file, {"file": "<id>"}, or an object, {"url": "s3://bucket/key"}.'


class InputRef(fields.Dict):
    """``{"file": "<uuid>"}`` or ``{"url": "<s3:// or file:// URL of one object>"}``, nothing else."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("metadata", {"description": INPUT_DESCRIPTION})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, str]:
        loaded = super()._deserialize(value, attr, data, **kwargs)
        if set(loaded) == {"file"}:
            return {"file": str(_file_id(loaded["file"]))}
        if set(loaded) == {"url"} and isinstance(loaded["url"], str):
            return {"url": object_url(loaded["url"])}
        raise ValidationError(f"Must be exactly one of {INPUT_DESCRIPTION}")


def _file_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(f"{value!r} is not a file id (a UUID).") from None


def object_url(url: str) -> str:
    try:
        split_object(url)
    except InvalidInputError as exc:
        raise ValidationError(str(exc)) from None
    return url


class FileOrUrl(Schema):
    """A payload naming its input at the top level: ``file`` (an upload's id) or ``url``."""

    file = fields.UUID(load_default=None, metadata={"description": "An uploaded file's id."})
    url = fields.String(
        load_default=None,
        validate=object_url,
        metadata={"description": "Or an object's s3:// or file:// URL."},
    )

    @post_load
    def _as_json(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {name: str(value) if isinstance(value, uuid.UUID) else value for name, value in data.items()}

    @validates_schema
    def _one_input(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data.get("file") is None) == (data.get("url") is None):
            raise ValidationError("Give exactly one of file (an uploaded file's id) or url.", "file")
