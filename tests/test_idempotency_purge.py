"""The purge of expired idempotency keys at scale: short batches, never a live key."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select

from jobs import tokens, upkeep
from jobs.db import Database
from jobs.models import ApiToken, IdempotencyKey, utcnow

EXPIRED, LIVE, BATCH = 100_000, 1_000, 5_000


def keys(token_id: object, prefix: str, count: int, expires_in: timedelta) -> list[dict[str, object]]:
    now = utcnow()
    return [
        {
            "token_id": token_id,
            "key": f"{prefix}-{n}",
            "request_hash": "h",
            "created_at": now,
            "expires_at": now + expires_in,
        }
        for n in range(count)
    ]


def test_a_hundred_thousand_expired_keys_go_in_batches_and_every_live_key_stays(database: Database) -> None:
    with database.sessions.begin() as session:
        tokens.create_token(session, "purge", ["jobs:write"])
    with database.sessions.begin() as session:
        token_id = session.scalars(select(ApiToken.id)).one()
        session.execute(insert(IdempotencyKey), keys(token_id, "old", EXPIRED, timedelta(hours=-1)))
        session.execute(insert(IdempotencyKey), keys(token_id, "live", LIVE, timedelta(hours=1)))
    seen: list[tuple[int, int]] = []

    purged = upkeep.purge_expired_keys(database.sessions, BATCH, lambda done, of: seen.append((done, of)))

    assert purged == EXPIRED
    assert [done for done, _ in seen] == [BATCH * n for n in range(1, EXPIRED // BATCH + 1)] + [EXPIRED]
    assert {of for _, of in seen} == {EXPIRED}
    with database.sessions() as session:
        left = session.scalars(select(IdempotencyKey.key)).all()
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == LIVE
    assert all(key.startswith("live-") for key in left)
