"""Engine and session factory for PostgreSQL and the embedded SQLite default."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from jobs.settings import Settings


def make_engine(settings: Settings, *, for_worker: bool = False) -> Engine:
    """``for_worker``: PostgreSQL acknowledges commits before their WAL is flushed, and pooled
    connections are not pinged first. Both suit only a writer whose every change is recovered if
    lost and whose failed transaction requeues its message: the workers (see README).
    """
    url = settings.database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    connect_args = {"options": "-c synchronous_commit=off"} if for_worker else {}
    return create_engine(
        url, pool_pre_ping=not for_worker, pool_size=5, max_overflow=10, connect_args=connect_args
    )


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the one writer; busy_timeout makes writers wait, not fail."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    """Take SQLite's write lock up front: a read lock upgraded later fails instead of waiting."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_unless_present(session: Session, model: type[Any], **values: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the session's dialect (PostgreSQL or SQLite).

    Add ``.returning(...)`` to learn whether it inserted: drivers report ``rowcount`` -1 for it.
    """
    insert = pg_insert if is_postgresql(session) else sqlite_insert
    return insert(model).values(**values).on_conflict_do_nothing()
