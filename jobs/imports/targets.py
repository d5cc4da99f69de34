"""The PostgreSQL databases imports load into, and what their tables look like.

A profile is checked against its table when it is saved and again when a job starts: the table
must exist (the user's migrations make it), every profile column must be in it with the type the
profile says, every column it requires must be in the profile, and an upsert's keys must be a
unique index, since ``ON CONFLICT`` needs one.
"""

from __future__ import annotations

from typing import Any

import psycopg

from jobs.catalogue.maintenance import PLATFORM
from jobs.errors import InvalidInputError, TargetUnavailableError
from jobs.settings import Settings
from jobs.upkeep.postgres import Database

# A target that did not answer, or dropped the connection: worth another attempt.
UNAVAILABLE = (TargetUnavailableError, psycopg.OperationalError)
CONNECT_TIMEOUT_S = 5
# What information_schema.columns calls each profile type.
PG_TYPES = {
    "text": {"text", "character varying", "character"},
    "integer": {"integer"},
    "bigint": {"bigint"},
    "numeric": {"numeric"},
    "boolean": {"boolean"},
    "date": {"date"},
    "timestamptz": {"timestamp with time zone"},
    "uuid": {"uuid"},
    "jsonb": {"jsonb"},
}
_COLUMNS = """
SELECT column_name, data_type, is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'
FROM information_schema.columns WHERE table_schema = %s AND table_name = %s
"""
_UNIQUE_INDEXES = """
SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY((i.indkey::int2[])[0:i.indnkeyatts - 1])
WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indimmediate
  AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid
"""


def target_database(settings: Settings, name: str) -> Database:
    """``platform`` is the platform's own database; others come from CONVEYOR_IMPORT_TARGETS."""
    if name == PLATFORM:
        if not settings.has_postgresql:
            raise InvalidInputError(
                "The platform's database is not PostgreSQL: imports need a target in CONVEYOR_IMPORT_TARGETS."
            )
        return Database.at(settings.database_url)
    if name not in settings.import_targets:
        known = ", ".join([PLATFORM, *settings.import_targets])
        raise InvalidInputError(
            f"No import target is named {name!r}; known: {known} (CONVEYOR_IMPORT_TARGETS)."
        )
    return Database.at(settings.import_targets[name])


def connect(database: Database, what: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(database.url, password=database.password, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise TargetUnavailableError(
            f"The import target {what} cannot be reached: {str(exc).strip()}"
        ) from None


def check_table(settings: Settings, definition: dict[str, Any]) -> None:
    """Raises InvalidInputError naming the first column that does not fit."""
    with connect(target_database(settings, definition["target"]), definition["target"]) as connection:
        _not_the_platforms_own(connection, definition)
        table = f"{definition['schema']}.{definition['table']}"
        found = {
            name: (kind, needed)
            for name, kind, needed in connection.execute(
                _COLUMNS, (definition["schema"], definition["table"])
            )
        }
        if not found:
            raise InvalidInputError(
                f"The table {table} does not exist in target {definition['target']}: create it with your migrations."
            )
        _check_columns(table, definition["columns"], found)
        if definition["keys"] and definition["mode"] != "replace":
            unique = [sorted(row[0]) for row in connection.execute(_UNIQUE_INDEXES, (table,))]
            if sorted(definition["keys"]) not in unique:
                raise InvalidInputError(
                    f"An {definition['mode']} into {table} by keys needs a unique index on them ({', '.join(definition['keys'])})."
                )


def _not_the_platforms_own(connection: psycopg.Connection[Any], definition: dict[str, Any]) -> None:
    """An import into the platform's database keeps out of the schema of its own tables: a file
    must not be able to write a token, a job or the audit log."""
    if definition["target"] != PLATFORM:
        return
    row = connection.execute("SELECT current_schema()").fetchone()
    own = row[0] if row else "public"
    if definition["schema"] == own:
        raise InvalidInputError(
            f"The schema {own} holds the platform's own tables and is no import target: name another schema of the platform's database."
        )


def _check_columns(table: str, columns: list[dict[str, Any]], found: dict[str, tuple[str, bool]]) -> None:
    named = {column["name"] for column in columns}
    for column in columns:
        if column["name"] not in found:
            raise InvalidInputError(f"Column {column['name']!r} is not in {table}.")
        kind = found[column["name"]][0]
        if kind not in PG_TYPES[column["type"]]:
            raise InvalidInputError(
                f"Column {column['name']!r} of {table} is {kind}; the profile says {column['type']}."
            )
    for name, (_, needed) in found.items():
        if needed and name not in named:
            raise InvalidInputError(
                f"Column {name!r} of {table} is NOT NULL without a default, and not in the profile."
            )
