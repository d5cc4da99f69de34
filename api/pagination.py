"""Opaque cursors for keyset pagination over (timestamp, id), newest first."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from api.errors import abort


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (timestamp, id) a cursor names; anything not made by ``encode_cursor`` is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        text, row_id = json.loads(raw)
        if not (isinstance(text, str) and isinstance(row_id, str)):
            raise ValueError("not a timestamp and an id")
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
        abort(400, "The cursor is not valid; pass back next_cursor from a previous page.")
