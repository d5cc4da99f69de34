"""Opaque cursors for keyset pagination over (timestamp, id), newest first."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from api.errors import abort


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (timestamp, id) a cursor names; anything not made by `encode_cursor` is a 400."""
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


def cursor_of(query: dict[str, Any]) -> tuple[datetime, uuid.UUID] | None:
    """The position a list query's `cursor` names, or None for the first page."""
    return decode_cursor(query["cursor"]) if "cursor" in query else None


# A page stops early rather than grow past this much JSON (500 jobs of 1 MB payloads would be
# half a gigabyte); its next_cursor then continues where it stopped.
MAX_PAGE_BYTES = 4 * 1024 * 1024


def page(items: list[dict[str, Any]], limit: int, at: str) -> dict[str, Any]:
    """`items` as a page: cut to `MAX_PAGE_BYTES` (never below one item), with the cursor of
    its last item (`at` names its timestamp) when more may follow."""
    kept: list[dict[str, Any]] = []
    size = 0
    for item in items:
        size += len(json.dumps(item, default=str))
        if kept and size > MAX_PAGE_BYTES:
            break
        kept.append(item)
    more = len(kept) < len(items) or len(items) == limit
    last = kept[-1] if kept and more else None
    return {"items": kept, "next_cursor": encode_cursor(last[at], last["id"]) if last else None}
