"""The load: valid rows streamed with COPY into a staging table, then merged into the target in
the same transaction, so a reader sees the whole import or none of it, and a worker killed mid-way
leaves nothing (the staging table goes with its transaction).

What the staging table shows before the merge is reported, not merged: a key seen twice in the
file, and for ``insert`` a key the table already has; both are found in SQL, so a file's keys are
never held in the worker. For ``insert`` they are looked for only when the merge meets one (a
clean file costs one sorted INSERT); for ``upsert`` and ``replace``, whose merge would not meet
them all, before it. The target database keeps a ledger of what it has merged (the
file's sha256, the profile and its version), claimed in the merge's own transaction: the same file
with the same profile version is merged once, even by two jobs at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from psycopg import errors, sql

from tasks.imports.rows import BadRow
from tasks.imports.staging import LINE, STAGING, Staging

REJECTED, LEDGER = "conveyor_rejected", "conveyor_import_ledger"
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


class Load(Staging):
    """One import's transaction: staged (staging.py), claimed in the ledger, merged."""

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
