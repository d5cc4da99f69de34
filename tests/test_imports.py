"""The import handler against real PostgreSQL: every mode, bad rows reported, thresholds, re-runs
that never duplicate, and what a reader can see."""

from __future__ import annotations

import gzip
import io
import json
import uuid
from typing import Any

import psycopg
import pytest

from jobs import files
from jobs.catalogue import validate_payload
from jobs.imports import profiles
from jobs.imports.targets import target_database
from tasks.context import JobContext
from tasks.errors import PermanentError
from tasks.imports.job import import_file
from tests.ocr_helpers import Reports
from tests.support import Backend

pytestmark = pytest.mark.parametrize("backend", ["redis"], indirect=True)
TABLE = """
CREATE TABLE imports.{name} (
    id bigint PRIMARY KEY, name text NOT NULL, amount numeric, at timestamptz, active boolean, doc jsonb
)"""
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "bigint"},
    {"name": "name", "type": "text", "required": True, "max_length": 20},
    {"name": "amount", "type": "numeric"},
    {"name": "at", "type": "timestamptz"},
    {"name": "active", "type": "boolean"},
]
GOOD = "id,name,amount,at,active\n1,ann,1.50,2026-01-01T00:00:00Z,true\n2,bob,2,2026-01-02T10:00:00+01:00,false\n"


class Importer:
    def __init__(self, backend: Backend, table: str):
        self.backend, self.table = backend, table
        self.url = target_database(backend.settings, "platform").url

    def profile(self, mode: str = "insert", columns: list[dict[str, Any]] | None = None) -> str:
        name = f"p-{uuid.uuid4().hex[:8]}"
        definition = profiles.load_definition(
            {
                "schema": "imports",
                "table": self.table,
                "columns": columns or COLUMNS,
                "keys": ["id"],
                "mode": mode,
            }
        )
        with self.backend.sessions.begin() as session:
            profiles.save(session, self.backend.settings, name, definition, "test")
        return name

    def run(self, profile: str, data: bytes, **payload: Any) -> dict[str, Any]:
        with (
            self.backend.sessions.begin() as session,
            files.upload(self.backend.settings, io.BytesIO(data), name="in.csv", content_type=None) as row,
        ):
            session.add(row)
        loaded = validate_payload(
            "import", {"profile": profile, "file": str(row.id), **payload}, self.backend.settings
        )
        return import_file(loaded, self.context())

    def context(self) -> JobContext:
        from jobs.storage.inputs import resolve_input

        def resolve(ref: Any) -> Any:
            with self.backend.sessions() as session:
                return resolve_input(ref, self.backend.settings, session)

        return JobContext(
            uuid.uuid4(), 1, 1, Reports(), self.backend.settings, resolve, self.backend.sessions
        )

    def rows(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as connection:
            return connection.execute(
                f"SELECT id, name, amount::text, active FROM imports.{self.table} ORDER BY id"
            ).fetchall()

    def report(self, result: dict[str, Any]) -> list[list[str]]:
        with self.backend.sessions() as session:
            stream = files.open_content(
                self.backend.settings, files.get(session, uuid.UUID(result["report"]["file"]))
            )
        return [line.split(",", 3) for line in stream.read().decode().splitlines()[1:]]


@pytest.fixture
def importer(backend: Backend) -> Importer:
    table = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(target_database(backend.settings, "platform").url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS imports")
        connection.execute(TABLE.format(name=table))
    return Importer(backend, table)


def test_an_insert_loads_every_row_and_the_same_file_again_adds_nothing(importer: Importer) -> None:
    profile = importer.profile("insert")
    first = importer.run(profile, GOOD.encode())
    assert (first["rows_read"], first["inserted"], first["bad"], first["report"]) == (2, 2, 0, None)
    assert importer.rows() == [(1, "ann", "1.50", True), (2, "bob", "2", False)]
    again = importer.run(profile, GOOD.encode())
    assert again["already_imported_by"] is not None and again["inserted"] == 0
    assert len(importer.rows()) == 2


def test_an_upsert_inserts_updates_and_leaves_unchanged_rows_alone(importer: Importer) -> None:
    profile = importer.profile("upsert")
    importer.run(profile, GOOD.encode())
    changed = GOOD.replace("bob,2,", "bob,3,") + "3,cy,,,\n"
    result = importer.run(profile, changed.encode())
    assert (result["inserted"], result["updated"], result["unchanged"]) == (1, 1, 1)
    assert importer.rows()[1:] == [(2, "bob", "3", False), (3, "cy", None, None)]


def test_a_replace_swaps_the_whole_table(importer: Importer) -> None:
    importer.run(importer.profile("insert"), GOOD.encode())
    result = importer.run(importer.profile("replace"), b"id,name\n9,zed\n")
    assert (result["deleted"], result["inserted"]) == (2, 1)
    assert importer.rows() == [(9, "zed", None, None)]


def test_bad_rows_are_reported_and_over_the_limit_nothing_is_merged(importer: Importer) -> None:
    profile = importer.profile("insert")
    data = (
        GOOD
        + "x,dan,1,,\n4,,1,,\n5,eve,1,2026-01-01 00:00:00,\n6,fay,1,,maybe\n7,a-very-long-name-indeed-yes,1,,\n"
    )
    with pytest.raises(PermanentError, match=r"5 of 7 rows are bad, over the limit; nothing was merged"):
        importer.run(profile, data.encode())
    assert importer.rows() == []

    result = importer.run(profile, data.encode(), max_bad_rows=5)
    assert (result["inserted"], result["bad"]) == (2, 5)
    reported = importer.report(result)
    assert [(line, column) for line, column, *_ in reported] == [
        ("4", "id"),
        ("5", "name"),
        ("6", "at"),
        ("7", "active"),
        ("8", "name"),
    ]


def test_a_ratio_of_bad_rows_can_be_allowed(importer: Importer) -> None:
    profile = importer.profile("insert")
    data = GOOD + "x,dan,1,,\n"
    with pytest.raises(PermanentError):
        importer.run(profile, data.encode(), max_bad_ratio=0.2)
    assert importer.run(profile, data.encode(), max_bad_ratio=0.4)["inserted"] == 2


def test_an_insert_reports_rows_whose_key_is_already_there(importer: Importer) -> None:
    profile = importer.profile("insert")
    importer.run(profile, GOOD.encode())
    result = importer.run(profile, (GOOD + "3,cy,,,\n").encode(), max_bad_rows=10)
    assert (result["inserted"], result["bad"]) == (1, 2)
    assert [row[3] for row in importer.report(result)] == ["a row with this key is already in the table"] * 2


def test_a_dry_run_reports_and_merges_nothing(importer: Importer) -> None:
    result = importer.run(importer.profile("insert"), (GOOD + "x,dan,,,\n").encode(), dry_run=True)
    assert (result["dry_run"], result["bad"], result["inserted"]) == (True, 1, 0)
    assert importer.rows() == []


def test_gzip_and_json_lines_with_nested_values_into_jsonb(importer: Importer) -> None:
    columns: list[dict[str, Any]] = [*COLUMNS[:2], {"name": "doc", "type": "jsonb"}]
    profile = importer.profile("insert", columns)
    lines = [
        json.dumps({"id": 1, "name": "ann", "doc": {"tags": ["a", "b"], "n": 1}}),
        json.dumps({"id": 2, "name": "bob"}),
    ]
    result = importer.run(profile, gzip.compress("\n".join(lines).encode()))
    assert result["inserted"] == 2
    with psycopg.connect(importer.url) as connection:
        assert connection.execute(f"SELECT doc FROM imports.{importer.table} WHERE id = 1").fetchone() == (
            {"tags": ["a", "b"], "n": 1},
        )


@pytest.mark.parametrize("data", [b"", b"id,name,amount,at,active\n"], ids=["empty", "header-only"])
def test_a_file_with_no_rows_imports_nothing(importer: Importer, data: bytes) -> None:
    result = importer.run(importer.profile("insert"), data)
    assert (result["rows_read"], result["inserted"], result["bad"]) == (0, 0, 0)


def test_a_header_without_a_required_column_is_refused(importer: Importer) -> None:
    with pytest.raises(PermanentError, match="name"):
        importer.run(importer.profile("insert"), b"id,amount\n1,2\n")
    assert importer.rows() == []


def test_a_truncated_gzip_file_is_refused_and_nothing_is_merged(importer: Importer) -> None:
    data = gzip.compress((GOOD * 2000).encode())
    with pytest.raises(PermanentError, match="The gzip input is corrupt or truncated"):
        importer.run(importer.profile("upsert"), data[: len(data) // 2])
    assert importer.rows() == []


def test_an_unknown_profile_is_a_permanent_error(importer: Importer) -> None:
    with pytest.raises(PermanentError, match="No import profile is named 'nobody' at version 3"):
        importer.run("nobody", GOOD.encode(), version=3)


@pytest.mark.parametrize("mode", ["insert", "upsert"])
def test_a_key_twice_in_the_file_is_reported_and_the_rest_merged(importer: Importer, mode: str) -> None:
    result = importer.run(importer.profile(mode), (GOOD + "1,again,,,\n3,cy,,,\n").encode(), max_bad_rows=1)
    assert (result["inserted"], result["bad"]) == (3, 1)
    [(line, column, value, reason)] = importer.report(result)
    assert (line, column, value) == ("4", "", "1") and "first seen on line 2" in reason
    assert [row[1] for row in importer.rows()] == ["ann", "bob", "cy"]


def test_what_the_table_refuses_is_a_bad_row_with_its_reason(importer: Importer) -> None:
    with psycopg.connect(importer.url, autocommit=True) as connection:
        connection.execute(
            f"ALTER TABLE imports.{importer.table} ALTER name TYPE varchar(3), ALTER amount TYPE numeric(4, 2)"
        )
    data = GOOD + "3,cyrus,1,,\n4,dee,123.5,,\n5,eve,1,2023-02-29T00:00:00Z,\n6,fay,1,,\n"
    result = importer.run(importer.profile("insert"), data.encode(), max_bad_rows=3)
    assert (result["inserted"], result["bad"]) == (3, 3)
    reported = sorted(importer.report(result), key=lambda row: int(row[0]))  # listed as found
    assert [[*row[:2], row[3]] for row in reported] == [
        ["4", "name", "value too long for type character varying(3)"],
        ["5", "amount", "numeric field overflow"],
        ["6", "at", "not a timestamp"],
    ]
    assert [row[0] for row in importer.rows()] == [1, 2, 6]


def test_a_dry_run_finds_the_keys_the_table_has_already(importer: Importer) -> None:
    profile = importer.profile("insert")
    importer.run(profile, GOOD.encode())
    result = importer.run(profile, GOOD.replace("1,ann", "9,ann").encode(), dry_run=True)
    assert (result["bad"], result["inserted"], result["unchanged"]) == (1, 0, 1)
    assert importer.report(result)[0][:3] == ["3", "", "2"]


def test_a_json_value_the_table_refuses_is_its_own_bad_row(importer: Importer) -> None:
    columns: list[dict[str, Any]] = [*COLUMNS[:2], {"name": "doc", "type": "jsonb"}]
    data = 'id,name,doc\n1,a,1\n2,b,2\n3,c,"{""x"": 1e999}"\n4,d,"""\\u0000"""\n5,e,5\n'
    result = importer.run(importer.profile("insert", columns), data.encode(), max_bad_rows=2)
    assert (result["inserted"], result["bad"]) == (3, 2)
    assert [row[:2] for row in importer.report(result)] == [["4", "doc"], ["5", "doc"]]


def test_an_upsert_reports_a_key_twice_even_when_its_first_row_is_unchanged(importer: Importer) -> None:
    profile = importer.profile("upsert")
    importer.run(profile, GOOD.encode())
    changed = GOOD + "1,zed,1.50,,\n"
    result = importer.run(profile, changed.encode(), max_bad_rows=1)
    assert (result["bad"], result["updated"], result["unchanged"]) == (1, 0, 2)  # line 2's, the first
    assert importer.rows()[0][1] == "ann"


def test_a_replace_of_nothing_but_bad_rows_stores_its_report(importer: Importer) -> None:
    importer.run(importer.profile("insert"), GOOD.encode())
    with pytest.raises(PermanentError, match=r"2 of 2 rows are bad.*The report: "):
        importer.run(importer.profile("replace"), b"id,name\nx,a\ny,b\n")
    with pytest.raises(PermanentError, match=r"no valid rows.*The report: "):
        importer.run(importer.profile("replace"), b"id,name\nx,a\n", max_bad_rows=5)
    assert len(importer.rows()) == 2
