"""POSTs made safe to retry: `Idempotency-Key` (or `X-Idempotency-Key`), scoped to the token."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Response, jsonify, request

from api.auth import current_token
from api.errors import abort
from api.runtime import runtime
from jobs import idempotency

HEADERS = ("Idempotency-Key", "X-Idempotency-Key")
# Well under `idempotency.ABANDONED_AFTER`: a request this busy is never taken for dead.
KEEP_ALIVE_EVERY_S = 20.0
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
    """Run `work` in one transaction, storing its outcome under the request's idempotency key.

    `work` gets a `Session`, except with `single_statement` and no key: then it gets a
    `Connection` (see `single_statement_engine`), which spares the ORM session's upkeep.

    A replay gets the stored outcome with `Idempotent-Replayed: true`; the same key with another
    body is a 422; the same key while the first request is still in flight is a 409. A request
    whose body is not JSON (an upload) names what identifies it as `fingerprint`.
    """
    rt = runtime()
    key = _key()
    if key is None:
        with (rt.single_statements if single_statement else rt.sessions).begin() as db:
            return respond(*work(db))
    token_id = current_token().id
    sent = fingerprint if fingerprint is not None else request.get_json(silent=True)
    with rt.sessions.begin() as session:
        ttl = timedelta(hours=rt.settings.idempotency_ttl_hours)
        hashed = idempotency.request_hash(request.method, request.path, sent)
        stored = idempotency.begin(session, token_id, key, hashed, ttl)
    if stored is not None:
        return _replay(stored)
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


def _key() -> str | None:
    key = next((request.headers[h] for h in HEADERS if h in request.headers), None)
    if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
        abort(400, "Idempotency-Key must be 1 to 255 printable characters.")
    return key


def _replay(stored: idempotency.StoredResponse) -> Response:
    headers = {"Idempotent-Replayed": "true", **({"Location": stored.location} if stored.location else {})}
    return respond(stored.body, stored.status, headers)


class KeyKeeper:
    """Keeps the request's idempotency key held while a long upload reads its body, so a retry
    sent meanwhile gets a 409, not a second copy. Callable from any thread (S3 uploads read in
    their own), at most once every `KEEP_ALIVE_EVERY_S` it writes."""

    def __init__(self) -> None:
        self.key = _key()
        self.token_id = current_token().id if self.key is not None else None
        self.sessions = runtime().sessions
        self.last = time.monotonic()

    def __call__(self, _read: int = 0) -> None:
        """Called as the upload reads its body (`_read` bytes at a time)."""
        now = time.monotonic()
        if self.key is None or self.token_id is None or now - self.last < KEEP_ALIVE_EVERY_S:
            return
        self.last = now
        with self.sessions.begin() as session:
            idempotency.touch(session, self.token_id, self.key)
