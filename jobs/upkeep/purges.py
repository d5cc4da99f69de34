"""The purges beat runs: expired idempotency keys, and dead letters past their retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from jobs import dead_letters, idempotency

Progress = Callable[[int, int], None]
"""Told (done, of) after each batch; may raise to stop."""


def purge_expired_keys(sessions: sessionmaker[Session], batch_size: int, progress: Progress) -> int:
    """Delete expired keys ``batch_size`` per transaction until none is left; returns how many.
    Keys that expire meanwhile are taken too, so the total may pass the count made at the start."""
    with sessions() as session:
        expected = idempotency.count_expired(session)
    done = 0
    while True:
        with sessions.begin() as session:
            deleted = idempotency.purge_expired(session, batch_size)
        done += deleted
        progress(done, max(expected, done))
        if deleted < batch_size:
            return done


def purge_expired_dead_letters(sessions: sessionmaker[Session], retention: timedelta, actor: str) -> int:
    with sessions.begin() as session:
        return dead_letters.purge_expired(session, retention, actor=actor)
