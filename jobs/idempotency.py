"""Idempotency keys for POSTs, scoped to the caller's token.

A key is first recorded as in flight in its own transaction, so a concurrent request with the same
key sees it and gets a 409; the response is stored in the transaction that does the work, so a
replay returns exactly what the first request answered.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from jobs.db import insert_unless_present
from jobs.errors import KeyInFlightError, KeyReusedError
from jobs.models import IdempotencyKey, UTCDateTime, utcnow

# Past gunicorn's 30 s request timeout: a key still "in flight" this long lost its request.
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    location: str | None


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def begin(
    session: Session, token_id: uuid.UUID, key: str, fingerprint: str, ttl: timedelta
) -> StoredResponse | None:
    """Claim ``key`` for this request, or return the response stored for it.

    Raises KeyInFlightError while another request holds it, KeyReusedError for another body.
    """
    now = utcnow()
    _forget_stale(session, (IdempotencyKey.token_id == token_id) & (IdempotencyKey.key == key), now)
    claimed = session.execute(
        insert_unless_present(
            session, IdempotencyKey, token_id=token_id, key=key, request_hash=fingerprint,
            created_at=now, expires_at=now + ttl,
        ).returning(IdempotencyKey.key)
    )  # fmt: skip
    if claimed.first() is not None:
        return None
    existing = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.token_id == token_id, IdempotencyKey.key == key)
    ).one()
    if existing.request_hash != fingerprint:
        raise KeyReusedError(f"Idempotency key {key!r} was already used with another request.")
    if existing.response_status is None:
        raise KeyInFlightError(f"A request with idempotency key {key!r} is still in flight.")
    return StoredResponse(existing.response_status, existing.response_body, existing.response_location)


def stored_many(session: Session, token_id: uuid.UUID, keys: Collection[str]) -> dict[str, IdempotencyKey]:
    """The live rows of ``keys``, once expired and abandoned ones are gone (as ``begin`` does)."""
    mine = (IdempotencyKey.token_id == token_id) & IdempotencyKey.key.in_(list(keys))
    _forget_stale(session, mine, utcnow())
    return {row.key: row for row in session.scalars(select(IdempotencyKey).where(mine))}


def _forget_stale(session: Session, mine: Any, now: datetime) -> None:
    """Delete the keys of ``mine`` past their time to live, or in flight so long that their
    request is dead."""
    abandoned = IdempotencyKey.response_status.is_(None) & (IdempotencyKey.created_at < now - ABANDONED_AFTER)
    session.execute(delete(IdempotencyKey).where(mine, (IdempotencyKey.expires_at < now) | abandoned))


def record_many(
    session: Session, token_id: uuid.UUID, records: list[tuple[str, str, StoredResponse]], ttl: timedelta
) -> None:
    """Store each (key, request hash, response) as a completed request's, all in one statement.
    A key another request stored meanwhile fails it (IntegrityError)."""
    now = utcnow()
    rows = [
        {
            "token_id": token_id, "key": key, "request_hash": fingerprint,
            "response_status": response.status, "response_body": response.body,
            "response_location": response.location, "created_at": now, "expires_at": now + ttl,
        }
        for key, fingerprint, response in records
    ]  # fmt: skip
    if rows:
        session.execute(insert(IdempotencyKey), rows)


def complete(session: Session, token_id: uuid.UUID, key: str, response: StoredResponse) -> None:
    row = session.get(IdempotencyKey, (token_id, key))
    if row is not None:
        row.response_status = response.status
        row.response_body = response.body
        row.response_location = response.location


def touch(session: Session, token_id: uuid.UUID, key: str) -> None:
    """Keep an in-flight key from being taken for abandoned: a long upload still holds it."""
    session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.token_id == token_id,
            IdempotencyKey.key == key,
            IdempotencyKey.response_status.is_(None),
        )
        .values(created_at=utcnow())
    )


def release(session: Session, token_id: uuid.UUID, key: str) -> None:
    """Forget an in-flight key whose request failed, so the client can try again."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.token_id == token_id,
            IdempotencyKey.key == key,
            IdempotencyKey.response_status.is_(None),
        )
    )


def count_expired(session: Session) -> int:
    return session.scalar(select(func.count()).where(IdempotencyKey.expires_at < utcnow())) or 0


# A batch is found by the expiry index and deleted by row address (PostgreSQL's ctid, SQLite's
# rowid): matched on the key instead, PostgreSQL hashed a scan of the whole table for every batch,
# and a million expired keys took two minutes. The outer test of ``expires_at`` is checked again
# on a row a concurrent request renewed meanwhile, so a live key is never taken.
_PURGE = {
    "postgresql": "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys"
    " WHERE expires_at < :now LIMIT :limit)) AND expires_at < :now",
    "sqlite": "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys"
    " WHERE expires_at < :now LIMIT :limit) AND expires_at < :now",
}


def purge_expired(session: Session, limit: int) -> int:
    """Forget up to ``limit`` keys past their time to live; returns how many."""
    statement = text(_PURGE[session.get_bind().dialect.name]).bindparams(
        bindparam("now", type_=UTCDateTime())
    )
    deleted = session.execute(statement, {"now": utcnow(), "limit": limit})
    return int(cast(CursorResult[Any], deleted).rowcount)
