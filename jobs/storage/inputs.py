"""A job's input, named in its payload as ``{"file": "<id>"}`` (an upload) or ``{"url": "s3://…"}``:
one function finds the storage and key either names."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from jobs.models import StoredFile
from jobs.settings import Settings
from jobs.storage import ObjectMissingError, Storage, open_object


def resolve_input(ref: Mapping[str, Any], settings: Settings, session: Session) -> tuple[Storage, str]:
    """The storage and key of the input ``ref`` names (as ``catalogue.inputs.InputRef`` loads it).
    A file id that names nothing is a permanent error, as a missing object is."""
    if "file" not in ref:
        return open_object(ref["url"], settings)
    row = session.get(StoredFile, uuid.UUID(str(ref["file"])))
    if row is None:
        raise ObjectMissingError(f"No file has id {ref['file']}; upload it with POST /v1/files.")
    return open_object(row.url, settings, trusted=True)
