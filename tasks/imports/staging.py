"""Rows into the staging table, by COPY: a fast batch as read, converted rows with psycopg's
dumpers. Each batch is copied under a savepoint: one PostgreSQL refuses is sent again the exact
way, and a row of it that it still refuses is a bad row with PostgreSQL's reason (a number too big
for ``numeric(5,2)``, a text too long for ``varchar(20)``), not the end of the import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg
from psycopg import errors, sql

from tasks.imports.rows import SHOWN_CHARS, BadRow, Fast, Row

STAGING, LINE = "conveyor_staging", "conveyor_line"
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
# psycopg's names for the profile's types, for COPY to dump each value as its column's type.
COPY_TYPES = {
    **{"text": "text", "integer": "int4", "bigint": "int8", "numeric": "numeric", "boolean": "bool"},
    **{"date": "date", "timestamptz": "timestamptz", "uuid": "uuid", "jsonb": "jsonb"},
}


class Staging:
    """The staging table of one import's transaction on ``connection`` (the caller opens and
    commits it), and how many rows it holds."""

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


def _refused(exc: psycopg.Error, rows: list[Row]) -> tuple[int, BadRow]:
    """Which row PostgreSQL refused (its COPY names the line), as a bad row with its reason."""
    found = _WHERE.search(exc.diag.context or "")
    if not found or not 0 < int(found[1]) <= len(rows):
        raise exc
    at = int(found[1]) - 1
    value = (found[3] or "")[:SHOWN_CHARS]
    return at, BadRow(rows[at][0], found[2], value, exc.diag.message_primary or str(exc).strip())
