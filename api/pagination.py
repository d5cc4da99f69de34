"""Opaque cursors for keyset pagination over (timestamp, id), newest first."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from api.errors import abort


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        text, row_id = json.loads(raw)
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error):
        abort(400, "The cursor is not valid; pass back next_cursor from a previous page.")
