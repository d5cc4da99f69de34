"""A worker's database: its pool, and the connection each pool process keeps for its hot statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from functools import cached_property

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from jobs.db import Database, closed_by_server
from jobs.settings import Settings
from workers.heartbeat import Heartbeat


class Runtime(Database):
    """A worker's database, with the connection each pool process keeps for its hot statements."""

    def __init__(self, settings: Settings):
        super().__init__(settings, for_worker=True)
        self._connection: Connection | None = None

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """A connection for one statement that is a transaction by itself.

        On PostgreSQL it is the process's own autocommit connection, kept open between jobs:
        that spares each of a job's two writes a pool checkout and the BEGIN and COMMIT round
        trips. It is replaced after an error or once the server has closed it.
        """
        if self.engine.dialect.name != "postgresql":
            with self.engine.begin() as transaction:
                yield transaction
            return
        connection = self._connection
        if connection is None or closed_by_server(connection.connection.driver_connection):
            self._close_connection()
            connection = self._connection = self.single_statements.connect()
        try:
            yield connection
        except BaseException:
            self._close_connection()
            raise

    @cached_property
    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.sessions, timedelta(seconds=self.settings.lease_s))

    def after_fork(self) -> None:
        """In a new pool process: never use the connections of the process it was forked from."""
        if "engine" in self.__dict__:
            self.engine.dispose(close=False)
        self._connection = None
        self.__dict__.pop("heartbeat", None)

    def _close_connection(self) -> None:
        if self._connection is not None:
            with suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
