"""Only one beat fires: it holds a lock that dies with its process. On PostgreSQL that is a
session advisory lock on a connection of its own; on the embedded SQLite, a file lock."""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import suppress
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from jobs.settings import Settings

log = logging.getLogger(__name__)

LOCK_KEY = 0x436F6E76  # "Conv": one key for every beat of one platform database


# TCP keepalives on the lock's connection: a leader cut off from the server loses its lock (and
# another beat takes over) within about 25 s, not the two hours of the kernel's default.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


class AdvisoryLock:
    def __init__(self, engine: Engine):
        self.engine = create_engine(engine.url, poolclass=NullPool, connect_args=KEEPALIVES)
        self.connection: Connection | None = None

    def acquire(self) -> bool:
        with suppress(SQLAlchemyError):
            if self.connection is None:
                self.connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if self.connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar():
                return True
        self.release()
        return False

    def held(self) -> bool:
        """Whether the lock's connection still answers: a lost connection is a lost lock."""
        if self.connection is None:
            return False
        try:
            self.connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            log.warning("Beat lost its database connection, and with it the leader lock.")
            self.release()
            return False
        return True

    def release(self) -> None:
        if self.connection is not None:
            with suppress(SQLAlchemyError):
                self.connection.close()
            self.connection = None


class FileLock:
    def __init__(self, path: os.PathLike[str] | str):
        self.path = path
        self.file: Any = None

    def acquire(self) -> bool:
        file = open(self.path, "a")  # noqa: SIM115 - held open for as long as this beat leads
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        self.file = file
        return True

    def held(self) -> bool:
        return self.file is not None

    def release(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def leader_lock(settings: Settings, engine: Engine) -> AdvisoryLock | FileLock:
    if settings.has_postgresql:
        return AdvisoryLock(engine)
    return FileLock(settings.data_dir / "beat.lock")
