"""POSTs made safe to retry: ``Idempotency-Key`` (or ``X-Idempotency-Key``), scoped to the token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Response, jsonify, request

from api.auth import current_token
from api.errors import abort
from api.runtime import runtime
from jobs import idempotency

HEADERS = ("Idempotency-Key", "X-Idempotency-Key")
Outcome = tuple[Any, int, dict[str, str]]


def respond(body: Any, status: int, headers: dict[str, str]) -> Response:
    """A body that is already JSON-ready (as stored for replays), sent as is."""
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def run_once(
    work: Callable[[Any], Outcome], *, single_statement: bool = False, fingerprint: Any = None
) -> Response:
    """Run ``work`` in one transaction, storing its outcome under the request's idempotency key.

    ``work`` gets a ``Session``, except with ``single_statement`` and no key: then it gets a
    ``Connection`` (see ``single_statement_engine``), which spares the ORM session's upkeep.

    A replay gets the stored outcome with ``Idempotent-Replayed: true``; the same key with another
    body is a 422; the same key while the first request is still in flight is a 409. A request
    whose body is not JSON (an upload) names what identifies it as ``fingerprint``.
    """
    rt = runtime()
    key = next((request.headers[h] for h in HEADERS if h in request.headers), None)
    if key is None:
        with (rt.single_statements if single_statement else rt.sessions).begin() as db:
            return respond(*work(db))
    if not (1 <= len(key) <= 255 and key.isprintable()):
        abort(400, "Idempotency-Key must be 1 to 255 printable characters.")
    token_id = current_token().id
    sent = fingerprint if fingerprint is not None else request.get_json(silent=True)
    fingerprint = idempotency.request_hash(request.method, request.path, sent)
    with rt.sessions.begin() as session:
        ttl = timedelta(hours=rt.settings.idempotency_ttl_hours)
        stored = idempotency.begin(session, token_id, key, fingerprint, ttl)
    if stored is not None:
        headers = {
            "Idempotent-Replayed": "true",
            **({"Location": stored.location} if stored.location else {}),
        }
        return respond(stored.body, stored.status, headers)
    try:
        with rt.sessions.begin() as session:
            body, status, headers = work(session)
            outcome = idempotency.StoredResponse(status, body, headers.get("Location"))
            idempotency.complete(session, token_id, key, outcome)
    except BaseException:
        with rt.sessions.begin() as session:
            idempotency.release(session, token_id, key)
        raise
    return respond(body, status, headers)
