"""Engine and session factory for PostgreSQL and the embedded SQLite default."""

from __future__ import annotations

import os
import select
import sqlite3
import uuid
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Select,
    UpdateBase,
    create_engine,
    event,
    make_url,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from jobs.settings import Settings


def make_engine(settings: Settings, *, for_worker: bool = False) -> Engine:
    """``for_worker``: PostgreSQL acknowledges commits before their WAL is flushed, which suits
    only a writer whose every change is recovered if lost: the workers (see README).

    The pool keeps up to 10 connections, more than the API's 8 request threads, so a busy API
    does not open and close a connection per request.
    """
    url = settings.database_url
    if url.startswith("sqlite"):
        _create_private(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    connect_args = {"options": "-c synchronous_commit=off"} if for_worker else {}
    engine = create_engine(url, pool_size=10, max_overflow=10, connect_args=connect_args)
    event.listen(engine, "checkout", _discard_if_closed_by_server)
    return engine


def _create_private(database: str | None) -> None:
    """Create the SQLite file readable by this user only, before SQLite creates it world-readable."""
    if not database or database == ":memory:":
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _discard_if_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """What ``pool_pre_ping`` guards against, without its round trip on every checkout:
    SQLAlchemy replaces a connection that fails this check with a fresh one."""
    if closed_by_server(dbapi_connection):
        raise DisconnectionError("The database closed this pooled connection.")


def closed_by_server(dbapi_connection: Any) -> bool:
    """An idle PostgreSQL connection has nothing to read unless the server ended it (a restart,
    ``pg_terminate_backend``): it then sent its last words or closed the socket."""
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def is_outage(exc: BaseException) -> bool:
    """Whether a database error says the server is unreachable, restarting, busy or timed out,
    which waiting can fix, rather than that this statement's data cannot be stored, which it
    cannot. The workers' hot statements raise psycopg's own errors, the rest SQLAlchemy's."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | sqlite3.OperationalError)


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


def single_statement_engine(engine: Engine) -> Engine:
    """For work that is one statement: on PostgreSQL each statement commits by itself, which
    spares the BEGIN and COMMIT round trips. SQLite keeps its transactions."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


class Database:
    """A process's engine and session factory: the API, a worker, the relay and the CLI each hold
    one. Made on first use, so a forked pool process opens connections of its own."""

    def __init__(self, settings: Settings, *, for_worker: bool = False):
        self.settings = settings
        self.for_worker = for_worker

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings, for_worker=self.for_worker)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def single_statements(self) -> Engine:
        return single_statement_engine(self.engine)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def is_postgresql(db: Session | Connection) -> bool:
    bind = db.get_bind() if isinstance(db, Session) else db
    return bind.dialect.name == "postgresql"


def insert_unless_present(session: Session, model: type[Any], **values: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the session's dialect (PostgreSQL or SQLite).

    Add ``.returning(...)`` to learn whether it inserted: drivers report ``rowcount`` -1 for it.
    """
    insert = pg_insert if is_postgresql(session) else sqlite_insert
    return insert(model).values(**values).on_conflict_do_nothing()


class HotStatement:
    """A Core statement that every job runs, run on PostgreSQL by psycopg itself.

    SQLAlchemy's execution path (cache lookup, bind and result processing, its result object)
    cost 40 % of the CPU of a job's claim and success; the statement is compiled once instead.
    ``json`` names the parameters bound to JSON columns, which psycopg needs wrapped.
    """

    def __init__(self, statement: UpdateBase, *, json: tuple[str, ...] = ()):
        self.statement = statement
        self.json = json
        self.compiled: tuple[str, dict[str, Any]] | None = None

    def run(self, db: Session | Connection, parameters: dict[str, Any]) -> Any:
        """The first row the statement returns, or None."""
        if not isinstance(db, Connection) or not is_postgresql(db):
            result = cast(CursorResult[Any], db.execute(self.statement, parameters))
            return result.first() if result.returns_rows else None
        if self.compiled is None:
            compiled = self.statement.compile(dialect=db.dialect)
            self.compiled = str(compiled), dict(compiled.params)
        sql, defaults = self.compiled
        values = {**defaults, **parameters, **{name: Json(parameters[name]) for name in self.json}}
        cursor = _kept_cursor(db)
        cursor.execute(sql, values)
        return cursor.fetchone() if cursor.description else None


def _kept_cursor(db: Connection) -> Any:
    """The connection's one cursor for hot statements, kept with it: opening a cursor per
    statement cost a quarter of the statement's CPU."""
    driver = db.connection.driver_connection
    kept = db.connection.info.get("conveyor_cursor")
    if kept is None or kept.closed or kept.connection is not driver:
        kept = driver.cursor(row_factory=namedtuple_row)  # type: ignore[union-attr]
        db.connection.info["conveyor_cursor"] = kept
    return kept


def newest_first(
    statement: Select[Any], at: Any, row_id: Any, before: tuple[datetime, uuid.UUID] | None
) -> Select[Any]:
    """``statement`` ordered newest first by (``at``, ``row_id``) and, given the cursor ``before``
    (the last row of the previous page), starting past it: the keyset pagination of every list."""
    statement = statement.order_by(at.desc(), row_id.desc())
    return statement if before is None else statement.where(tuple_(at, row_id) < before)
