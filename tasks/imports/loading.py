"""The load: valid rows streamed with COPY into a staging table, then merged into the target in
the same transaction, so a reader sees the whole import or none of it, and a worker killed mid-way
leaves nothing (the staging table goes with its transaction).

The target database keeps a ledger of what it has merged (file sha256, profile and version): the
same file imported again with the same profile version merges nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

STAGING = "conveyor_staging"
LINE = "conveyor_line"
LEDGER = "conveyor_import_ledger"
# psycopg's names for the profile's types, for COPY to dump each value as its column's type.
COPY_TYPES = {
    **{"text": "text", "integer": "int4", "bigint": "int8", "numeric": "numeric", "boolean": "bool"},
    **{"date": "date", "timestamptz": "timestamptz", "uuid": "uuid", "jsonb": "jsonb"},
}


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
        self.staged = 0

    def stage(self, rows: Iterable[tuple[int, list[Any]]]) -> None:
        """COPY the valid rows, each with its line in the file, into the staging table."""
        self.connection.execute(
            sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                sql.Identifier(STAGING), self.columns, self.table
            )
        )
        self.connection.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} bigint").format(
                sql.Identifier(STAGING), sql.Identifier(LINE)
            )
        )
        copy = sql.SQL("COPY {} ({}, {}) FROM STDIN").format(
            sql.Identifier(STAGING), self.columns, sql.Identifier(LINE)
        )
        with self.connection.cursor().copy(copy) as stream:
            stream.set_types([*(COPY_TYPES[column["type"]] for column in self.definition["columns"]), "int8"])
            for line, values in rows:
                stream.write_row([*values, line])
                self.staged += 1

    def imported_by(self, sha256: str, profile: str, version: int) -> str | None:
        """The job that already merged this file with this profile version, if any."""
        self.connection.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (sha256 text, profile text, version integer, job_id text,"
                " rows bigint, imported_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sha256, profile, version))"
            ).format(self._ledger())
        )
        found = self.connection.execute(
            sql.SQL("SELECT job_id FROM {} WHERE sha256 = %s AND profile = %s AND version = %s").format(
                self._ledger()
            ),
            (sha256, profile, version),
        ).fetchone()
        return str(found[0]) if found else None

    def conflicts(self) -> list[tuple[int, str]]:
        """For ``insert``: the staged rows whose key the table already has, (line, key as text)."""
        keys = self.definition["keys"]
        if self.definition["mode"] != "insert" or not keys:
            return []
        matched = sql.SQL(" AND ").join(sql.SQL("t.{0} = s.{0}").format(sql.Identifier(key)) for key in keys)
        shown = sql.SQL(" || ', ' || ").join(
            sql.SQL("s.{}::text").format(sql.Identifier(key)) for key in keys
        )
        query = sql.SQL(
            "SELECT s.{}, {} FROM {} s WHERE EXISTS (SELECT 1 FROM {} t WHERE {}) ORDER BY 1"
        ).format(sql.Identifier(LINE), shown, sql.Identifier(STAGING), self.table, matched)
        return [(int(line), str(key)) for line, key in self.connection.execute(query)]

    def merge(self) -> Merged:
        mode = self.definition["mode"]
        deleted = 0
        if mode == "replace":
            deleted = self.connection.execute(sql.SQL("DELETE FROM {}").format(self.table)).rowcount
        select = sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {}").format(
            self.table, self.columns, self.columns, sql.Identifier(STAGING)
        )
        if mode != "upsert":
            conflict = sql.SQL(" ON CONFLICT DO NOTHING") if mode == "insert" else sql.SQL("")
            inserted = self.connection.execute(select + conflict).rowcount
            return Merged(inserted, 0, self.staged - inserted, deleted)
        flags = [
            row[0]
            for row in self.connection.execute(
                select + self._on_conflict() + sql.SQL(" RETURNING (xmax = 0)")
            )
        ]
        inserted = sum(flags)
        return Merged(inserted, len(flags) - inserted, self.staged - len(flags))

    def record(self, sha256: str, profile: str, version: int, job_id: str) -> None:
        self.connection.execute(
            sql.SQL(
                "INSERT INTO {} (sha256, profile, version, job_id, rows) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(self._ledger()),
            (sha256, profile, version, job_id, self.staged),
        )

    def _on_conflict(self) -> sql.Composed:
        keys = self.definition["keys"]
        others = [name for name in self.names if name not in keys]
        target = sql.SQL(", ").join(map(sql.Identifier, keys))
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

    def _ledger(self) -> sql.Identifier:
        return sql.Identifier(self.definition["schema"], LEDGER)
