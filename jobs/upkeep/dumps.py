"""Taking a dump: ``pg_dump --format=custom`` run in a snapshot the platform holds open, so the
exact row counts it records are those of the dump itself, and its output streamed, never held."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import psycopg
from psycopg import sql

from jobs.upkeep.digests import Digest, Told
from jobs.upkeep.postgres import Database, UpkeepError, connection_failed, server_version, tool_failed

# Every table whose rows pg_dump dumps: plain and partitioned ones, outside the system schemas.
USER_TABLES = """
    SELECT n.nspname, c.relname, c.reltuples::bigint
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    ORDER BY 1, 2
"""
T = TypeVar("T")


@dataclass
class Snapshot:
    """What a dump holds, read in the dump's own snapshot. ``tables`` and ``migration_head``
    are filled in as the block of ``exported_snapshot`` ends."""

    snapshot_id: str
    server_version: str
    database_size: int
    tables: dict[str, dict[str, int | None]] = field(default_factory=dict)
    migration_head: str | None = None


@contextmanager
def exported_snapshot(database: Database) -> Iterator[Snapshot]:
    """A REPEATABLE READ transaction on ``database`` whose snapshot stays exported (for
    ``pg_dump --snapshot``) until the block ends. Its tables are counted in that snapshot on a
    thread of their own while the block runs: the dump does not wait for the counts (a second of
    ``count(*)`` per six million rows), and they are still the dump's own."""
    with (
        database.connect(autocommit=True) as connection,
        ThreadPoolExecutor(1, thread_name_prefix="counts") as pool,
    ):
        snapshot = _read_snapshot(connection, database.url)
        counted = pool.submit(_guarded, contents, connection, database.url)
        try:
            yield snapshot
        except BaseException:
            connection.cancel_safe()  # a stopped or failed dump does not wait for the counts
            raise
        snapshot.tables, snapshot.migration_head = counted.result()
        connection.execute("ROLLBACK")


def _guarded(
    read: Callable[[psycopg.Connection[Any]], T], connection: psycopg.Connection[Any], url: str
) -> T:
    try:
        return read(connection)
    except psycopg.OperationalError as exc:
        raise connection_failed(url, str(exc)) from None
    except psycopg.Error as exc:
        raise UpkeepError(f"Reading the tables of {url} failed: {' '.join(str(exc).split())}") from None


def _read_snapshot(connection: psycopg.Connection[Any], url: str) -> Snapshot:
    return _guarded(_exported, connection, url)


def _exported(connection: psycopg.Connection[Any]) -> Snapshot:
    connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    row = connection.execute("SELECT pg_export_snapshot()").fetchone()
    _, version = server_version(connection)
    size = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return Snapshot(str(row[0]) if row else "", version, int(size[0]) if size else 0)


def contents(connection: psycopg.Connection[Any]) -> tuple[dict[str, dict[str, int | None]], str | None]:
    """Every user table's exact row count and estimate (None before any ANALYZE), and the
    Alembic migration head if the database has one."""
    tables: dict[str, dict[str, int | None]] = {}
    for schema, name, estimate in connection.execute(USER_TABLES).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
        row = connection.execute(query).fetchone()
        tables[f"{schema}.{name}"] = {"rows": int(row[0]) if row else 0, "estimate": _estimate(estimate)}
    return tables, migration_head(connection)


def _estimate(reltuples: int) -> int | None:
    return reltuples if reltuples >= 0 else None


def migration_head(connection: psycopg.Connection[Any]) -> str | None:
    row = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
    if not row or row[0] is None:
        return None
    heads = sorted(str(r[0]) for r in connection.execute("SELECT version_num FROM alembic_version"))
    return ",".join(heads) or None


class DumpStream(Digest):
    """pg_dump's output as ``Storage.write`` reads it, hashed and counted on the way. The end
    of the output is checked before it is told: a pg_dump that failed or was killed raises
    from ``read``, so the storage discards what it was given (``Storage.write`` is
    all-or-nothing) rather than storing a truncated dump."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes], url: str, told: Told):
        super().__init__(told)
        self.process, self.stderr, self.url = process, stderr, url

    def read(self, size: int = -1) -> bytes:
        """A buffered pipe's read gives ``size`` bytes unless the output ended: the transfer
        manager takes a short read for the last part."""
        assert self.process.stdout is not None
        data = self.process.stdout.read(size)
        if not data:
            self._check_exit()
        return self.add(data)

    def _check_exit(self) -> None:
        returncode = self.process.wait()
        if returncode != 0:
            self.stderr.seek(0)
            said = self.stderr.read().decode(errors="replace")
            raise tool_failed("pg_dump", returncode, said, self.url)


@contextmanager
def pg_dump(tool: str, database: Database, snapshot_id: str, told: Told) -> Iterator[DumpStream]:
    """A running ``pg_dump`` of ``database`` in the exported snapshot; it is killed if the block
    ends before its output does (a cancelled job, a storage failure)."""
    command = [
        tool,
        "--format=custom",
        f"--snapshot={snapshot_id}",
        "--no-password",
        f"--dbname={database.url}",
    ]
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=database.env())
        except OSError as exc:
            raise UpkeepError(f"pg_dump could not be started ({tool}): {exc}.") from None
        try:
            yield DumpStream(process, stderr, database.url, told)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()
