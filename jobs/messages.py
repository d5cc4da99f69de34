"""What travels on the broker: job task messages, failure headers, and messages captured as
JSON-safe dicts so a dead letter can be stored and sent again unchanged.

A job's message carries its id and dispatch number, never its payload; its Celery task id is
``<job id>.<dispatch>``, which makes every dispatch's message (and dead letter) distinct.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

KEPT_PROPERTIES = ("correlation_id", "reply_to", "priority", "message_id", "expiration")
FAILURE_HEADER_PREFIX = "x-conveyor-"
BROKER_HEADERS = frozenset(
    {"x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"}
    | {"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"}
)
ERROR_LIMIT = 4000
TRACEBACK_LIMIT = 16000


def task_id(job_id: uuid.UUID | str, dispatch: int) -> str:
    return f"{job_id}.{dispatch}"


def dispatch_of(task_id: str) -> int | None:
    """The dispatch a job's task id names (``<job id>.<dispatch>``); None for another message."""
    _, dot, dispatch = task_id.rpartition(".")
    return int(dispatch) if dot and dispatch.isdigit() else None


def task_body(job_id: uuid.UUID, dispatch: int) -> str:
    """The body Celery's protocol 2 gives a job's task: ``[args, kwargs, embed]``."""
    return json.dumps([[str(job_id), dispatch], {}, {}])


def task_message(celery: Any, task_name: str, job_id: uuid.UUID, dispatch: int, *, origin: str) -> Any:
    """Celery's own protocol-2 message for a job's dispatch, built as ``send_task`` would."""
    tid = task_id(job_id, dispatch)
    return celery.amqp.as_task_v2(
        tid,
        task_name,
        args=[str(job_id), dispatch],
        argsrepr=f"('{job_id}', {dispatch})",
        kwargsrepr="{}",
        origin=origin,
        root_id=tid,
        reply_to=celery.thread_oid,
    )


def safe_text(text: str) -> str:
    """Text any database and broker can store: PostgreSQL refuses NUL, and UTF-8 lone surrogates
    (which ``surrogateescape`` makes of undecodable bytes); each becomes U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def clip_error(text: str) -> str:
    """An error message as it is stored and sent in a header: safe, at most ``ERROR_LIMIT`` long."""
    return safe_text(text[:ERROR_LIMIT])


def clip_traceback(text: str) -> str:
    """The innermost frames of a traceback, where the failure is."""
    return safe_text(text[-TRACEBACK_LIMIT:])


def failure_headers(info: dict[str, Any]) -> dict[str, Any]:
    """A failure's fields as ``x-conveyor-*`` headers."""
    return {FAILURE_HEADER_PREFIX + key: value for key, value in info.items()}


def read_failure_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """The failure fields a worker added to a dead-lettered message, without their prefix."""
    return {
        k.removeprefix(FAILURE_HEADER_PREFIX): v
        for k, v in headers.items()
        if k.startswith(FAILURE_HEADER_PREFIX)
    }


def original_message(message: dict[str, Any]) -> dict[str, Any]:
    """The message as first sent: without the failure headers added on the way to the DLQ."""
    headers = {
        k: v
        for k, v in (message.get("headers") or {}).items()
        if not k.startswith(FAILURE_HEADER_PREFIX) and k not in BROKER_HEADERS
    }
    return {**message, "headers": headers}


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
