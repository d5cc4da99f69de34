"""Broker messages as JSON-safe dicts, so a dead letter can be stored and sent again unchanged."""

from __future__ import annotations

import base64
from typing import Any

KEPT_PROPERTIES = ("correlation_id", "reply_to", "priority", "message_id", "expiration")


def capture(
    body: bytes | str,
    headers: dict[str, Any] | None,
    properties: dict[str, Any] | None,
    delivery_info: dict[str, Any] | None,
    content_type: str | None,
    content_encoding: str | None,
    queue: str | None,
) -> dict[str, Any]:
    """Everything needed to republish the message byte for byte."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode(), "base64"
    delivery_info = delivery_info or {}
    return {
        "body": text,
        "body_encoding": encoding,
        "headers": _json_safe(headers or {}),
        "properties": {k: v for k, v in (properties or {}).items() if k in KEPT_PROPERTIES and v is not None},
        "content_type": content_type,
        "content_encoding": content_encoding,
        "exchange": delivery_info.get("exchange") or "",
        "routing_key": delivery_info.get("routing_key") or queue or "",
        "queue": queue,
    }


def decode_body(message: dict[str, Any]) -> bytes:
    body = message.get("body") or ""
    if message.get("body_encoding") == "base64":
        return base64.b64decode(body)
    return str(body).encode("utf-8")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
