"""The load: valid rows streamed with COPY into a staging table, then merged into the target in
the same transaction, so a reader sees the whole import or none of it, and a worker killed mid-way
leaves nothing (the staging table goes with its transaction). Each batch is copied under a
savepoint: one PostgreSQL refuses is sent again the exact way, and a row of it that it still
refuses is a bad row with PostgreSQL's reason (a number too big for ``numeric(5,2)``, a text
too long for ``varchar(20)``), not the end of the import.

What the staging table shows before the merge is reported, not merged: a key seen twice in the
file, and for ``insert`` a key the table already has; both are found in SQL, so a file's keys are
never held in the worker. For ``insert`` they are looked for only when the merge meets one (a
clean file costs one sorted INSERT); for ``upsert`` and ``replace``, whose merge would not meet
them all, before it. The target database keeps a ledger of what it has merged (the
file's sha256, the profile and its version), claimed in the merge's own transaction: the same file
with the same profile version is merged once, even by two jobs at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, sql

from tasks.imports.rows import SHOWN_CHARS, BadRow, Fast, Row

STAGING, REJECTED, LINE = "conveyor_staging", "conveyor_rejected", "conveyor_line"
# For this transaction on the target's server: a million staged rows sort in memory. Not a limit:
# PostgreSQL spills to disk past it.
WORK_MEM, TEMP_BUFFERS = "64MB", "128MB"
SLOW_BATCH = 5000
# Fast batches sent in one COPY, so the worker reads on while the server copies: the worker
# waits for the server once a group, and keeps the group's lines to send again if refused.
GROUP_BYTES = 8 << 20
RETRY_CHUNK = 500  # rows a refused batch is sent again in, so each refused row costs little
# What a value the staging table refuses raises: its type's input (22…), or a domain's check (23…).
REFUSED = (errors.DataError, errors.IntegrityError)
# COPY's own line of an error's context (a jsonb value's parser adds a line of its own before it).
_WHERE = re.compile(r'^COPY \S+, line (\d+)(?:, column (.+?): "(.*)")?$', re.MULTILINE | re.DOTALL)
LEDGER = "conveyor_import_ledger"
# psycopg's names for the profile's types, for COPY to dump each value as its column's type.
COPY_TYPES = {
    **{"text": "text", "integer": "int4", "bigint": "int8", "numeric": "numeric", "boolean": "bool"},
    **{"date": "date", "timestamptz": "timestamptz", "uuid": "uuid", "jsonb": "jsonb"},
}
_LEDGER_TABLE = (
    "CREATE TABLE IF NOT EXISTS {} (sha256 text, profile text, version integer, job_id text, rows bigint,"
    " imported_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sha256, profile, version))"
)


@dataclass(frozen=True)
class Merged:
    inserted: int
    updated: int
    unchanged: int
    deleted: int = 0


class Load:
    """One import's transaction on ``connection`` (the caller opens and commits it)."""

    def __init__(self, connection: psycopg.Connection[Any], definition: dict[str, Any]):
        self.connection, self.definition = connection, definition
        self.table = sql.Identifier(definition["schema"], definition["table"])
        self.names = [column["name"] for column in definition["columns"]]
        self.columns = sql.SQL(", ").join(map(sql.Identifier, self.names))
        self.keys = definition["keys"]
        self.staged = 0

    def _run(self, statement: str, *parts: Any, params: Any = None) -> psycopg.Cursor[Any]:
        return self.connection.execute(sql.SQL(statement).format(*parts), params)

    def stage(self, rows: Iterable[Row | Fast], refused: Callable[[BadRow], None]) -> None:
        """COPY the valid rows, each with its line in the file, into the staging table; a row
        PostgreSQL refuses is ``refused``."""
        settings = (("temp_buffers", TEMP_BUFFERS), ("work_mem", WORK_MEM), ("client_encoding", "UTF8"))
        for setting, value in settings:
            self._run("SET LOCAL {} = {}", sql.Identifier(setting), sql.Literal(value))
        staging = sql.Identifier(STAGING)
        self._run(
            "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
            staging,
            self.columns,
            self.table,
        )
        self._run("ALTER TABLE {} ADD COLUMN {} bigint", staging, sql.Identifier(LINE))
        slow: list[Row] = []
        items = iter(rows)
        for item in items:
            if isinstance(item, Fast):
                self._copy_fast(item, items, slow, refused)
            else:
                slow.append(item)
            if len(slow) >= SLOW_BATCH:
                self._copy_slow(slow, refused)
                slow = []
        self._copy_slow(slow, refused)

    def _copy_fast(
        self, first: Fast, items: Iterator[Row | Fast], slow: list[Row], refused: Callable[[BadRow], None]
    ) -> None:
        """A group of fast batches as read, the first and those that follow it (a slow row is put
        aside); if PostgreSQL refuses a line, the group goes the exact way instead."""
        layout, group, size = first.layout, [first], len(first.data)
        copy = sql.SQL("COPY {} ({}, {}) FROM STDIN (FORMAT csv, DELIMITER {}, QUOTE {})").format(
            sql.Identifier(STAGING),
            sql.Identifier(LINE),
            sql.SQL(", ").join(map(sql.Identifier, layout.names)),
            sql.Literal(layout.delimiter),
            sql.Literal(layout.quote),
        )
        try:
            with self.connection.transaction(), self.connection.cursor().copy(copy) as stream:
                stream.write(first.data)
                while size < GROUP_BYTES and len(slow) < SLOW_BATCH and (item := next(items, None)):
                    if isinstance(item, Fast):
                        group.append(item)
                        size += len(item.data)
                        stream.write(item.data)
                    else:
                        slow.append(item)
        except REFUSED:
            for row in (row for fast in group for row in fast.exact()):
                if isinstance(row, BadRow):
                    refused(row)
                else:
                    slow.append(row)
            return
        self.staged += sum(fast.count for fast in group)

    def _copy_slow(self, rows: list[Row], refused: Callable[[BadRow], None]) -> None:
        """Converted rows; a batch PostgreSQL refuses is sent again in small chunks."""
        if not self._copied(rows):
            for start in range(0, len(rows), RETRY_CHUNK):
                self._copy_chunk(rows[start : start + RETRY_CHUNK], refused)

    def _copy_chunk(self, rows: list[Row], refused: Callable[[BadRow], None]) -> None:
        """The row PostgreSQL refuses is told by its line in the COPY: the rows before it are
        copied again, those after it copied on."""
        while rows:
            try:
                with self.connection.transaction():
                    self._copy_rows(rows)
            except REFUSED as exc:
                at, bad = _refused(exc, rows)
                refused(bad)
                if at and not self._copied(rows[:at]):
                    raise
                rows = rows[at + 1 :]
                continue
            self.staged += len(rows)
            return

    def _copied(self, rows: list[Row]) -> bool:
        """Whether the rows were copied (under a savepoint: if not, none was)."""
        try:
            with self.connection.transaction():
                self._copy_rows(rows)
        except REFUSED:
            return False
        self.staged += len(rows)
        return True

    def _copy_rows(self, rows: list[Row]) -> None:
        copy = sql.SQL("COPY {} ({}, {}) FROM STDIN").format(
            sql.Identifier(STAGING), self.columns, sql.Identifier(LINE)
        )
        with self.connection.cursor().copy(copy) as stream:
            stream.set_types([*(COPY_TYPES[column["type"]] for column in self.definition["columns"]), "int8"])
            for line, values in rows:
                stream.write_row([*values, line])

    def claim(self, sha256: str, profile: str, version: int, job_id: str) -> str | None:
        """Claim the file in the ledger; the job that merged it already, if one did (a claim of a
        job still running waits for its end)."""
        ledger = sql.Identifier(self.definition["schema"], LEDGER)
        self._run(
            "SELECT pg_advisory_xact_lock(hashtext({}))", sql.Literal(f"{self.definition['schema']}.{LEDGER}")
        )
        self._run(_LEDGER_TABLE, ledger)
        claimed = self._run(
            "INSERT INTO {} (sha256, profile, version, job_id, rows) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING job_id",
            ledger,
            params=(sha256, profile, version, job_id, self.staged),
        ).fetchone()
        if claimed:
            return None
        found = self._run(
            "SELECT job_id FROM {} WHERE sha256 = %s AND profile = %s AND version = %s",
            ledger,
            params=(sha256, profile, version),
        ).fetchone()
        return str(found[0]) if found else None

    def rejected(self) -> Iterator[BadRow]:
        """Take out of staging, and give as bad rows: a key seen on an earlier line of the file,
        and for ``insert`` a key the table already has. Read in batches."""
        if not self.keys:
            return
        self._run(
            "CREATE TEMP TABLE {} (line bigint, key text, reason text) ON COMMIT DROP",
            sql.Identifier(REJECTED),
        )
        self._take_out(self._duplicates())
        if self.definition["mode"] == "insert":
            self._take_out(self._present())
        with self.connection.cursor(name="conveyor_rejected_rows") as cursor:
            cursor.execute(
                sql.SQL("SELECT line, key, reason FROM {} ORDER BY line").format(sql.Identifier(REJECTED))
            )
            for line, key, reason in cursor:
                yield BadRow(line, None, key, reason)

    def _take_out(self, matching: sql.Composable) -> None:
        removed = self._run(
            "WITH gone AS (DELETE FROM {} s USING ({}) m WHERE s.{} = m.line RETURNING m.line, m.key, m.reason)"
            " INSERT INTO {} SELECT line, key, reason FROM gone",
            sql.Identifier(STAGING),
            matching,
            sql.Identifier(LINE),
            sql.Identifier(REJECTED),
        )
        self.staged -= removed.rowcount

    def _shown_key(self, alias: str) -> sql.Composable:
        return sql.SQL(" || ', ' || ").join(
            sql.SQL("{}.{}::text").format(sql.Identifier(alias), sql.Identifier(key)) for key in self.keys
        )

    def _duplicates(self) -> sql.Composable:
        keys = sql.SQL(", ").join(map(sql.Identifier, self.keys))
        return sql.SQL(
            "SELECT line, key, 'duplicate key, first seen on line ' || first AS reason FROM"
            " (SELECT d.{line} AS line, {shown} AS key, min(d.{line}) OVER (PARTITION BY {keys}) AS first FROM {staging} d) f"
            " WHERE line > first"
        ).format(
            line=sql.Identifier(LINE), shown=self._shown_key("d"), keys=keys, staging=sql.Identifier(STAGING)
        )

    def _present(self) -> sql.Composable:
        matched = sql.SQL(" AND ").join(
            sql.SQL("t.{0} = p.{0}").format(sql.Identifier(key)) for key in self.keys
        )
        return sql.SQL(
            "SELECT p.{line} AS line, {shown} AS key, 'a row with this key is already in the table' AS reason"
            " FROM {staging} p WHERE EXISTS (SELECT 1 FROM {table} t WHERE {matched})"
        ).format(
            line=sql.Identifier(LINE),
            shown=self._shown_key("p"),
            staging=sql.Identifier(STAGING),
            table=self.table,
            matched=matched,
        )

    def checks_first(self) -> bool:
        """Whether rejected rows are looked for before the merge, which would not meet them all:
        a replace's keys need no unique index, and an upsert leaves a row alone when it is equal,
        so a key twice in the file would pass unseen when its first row equals the table's."""
        return bool(self.keys) and self.definition["mode"] != "insert"

    def try_merge(self) -> Merged | None:
        """An insert's merge; or None, undone, when it met a key twice in the file or one the
        table has: ``rejected`` takes those out, and the merge is done again."""
        try:
            with self.connection.transaction():
                return self.merge()
        except errors.UniqueViolation:
            return None

    def merge(self) -> Merged:
        """One INSERT in key order (a B-tree filled in order is about a third quicker)."""
        mode = self.definition["mode"]
        deleted = self._run("DELETE FROM {}", self.table).rowcount if mode == "replace" else 0
        ordered = sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(map(sql.Identifier, self.keys)))
        insert = sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {}{}").format(
            self.table,
            self.columns,
            self.columns,
            sql.Identifier(STAGING),
            ordered if self.keys else sql.SQL(""),
        )
        if mode != "upsert":
            inserted = self._run("{}", insert).rowcount
            return Merged(inserted, 0, self.staged - inserted, deleted)
        counted = self._run(
            "WITH m AS ({} RETURNING (xmax = 0) AS inserted) SELECT count(*) FILTER (WHERE inserted), count(*) FROM m",
            insert + self._on_conflict(),
        ).fetchone()
        inserted, touched = (int(counted[0]), int(counted[1])) if counted else (0, 0)
        return Merged(inserted, touched - inserted, self.staged - touched, deleted)

    def _on_conflict(self) -> sql.Composable:
        target = sql.SQL(", ").join(map(sql.Identifier, self.keys))
        others = [name for name in self.names if name not in self.keys]
        if not others:
            return sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(target)
        assign = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in others
        )
        old = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(name)) for name in others)
        new = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(name)) for name in others)
        return sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(
            target, assign, old, new
        )


def _refused(exc: psycopg.Error, rows: list[Row]) -> tuple[int, BadRow]:
    """Which row PostgreSQL refused (its COPY names the line), as a bad row with its reason."""
    found = _WHERE.search(exc.diag.context or "")
    if not found or not 0 < int(found[1]) <= len(rows):
        raise exc
    at = int(found[1]) - 1
    value = (found[3] or "")[:SHOWN_CHARS]
    return at, BadRow(rows[at][0], found[2], value, exc.diag.message_primary or str(exc).strip())
