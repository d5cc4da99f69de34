"""The import reader's fast path: what its expression takes, the Python converters and PostgreSQL
both take and read alike; a file reads to the same rows and lines whichever path each line took."""

from __future__ import annotations

import io
from typing import Any

import psycopg
import pytest

from tasks.imports.fast import BLOCK
from tasks.imports.rows import BadRow, Column, Fast, Row, read_rows
from tests.services import PG_ADMIN_URL

PG_TYPES = {"integer": "int4", "bigint": "int8"}
CANDIDATES = {
    "integer": [
        "5",
        "-0",
        "007",
        "+5",
        " 5",
        "1_000",
        "2147483647",
        "2147483648",
        "999999999",
        "1.0",
        "\u0661",
    ],
    "bigint": ["123456789012345678", "9223372036854775807", "9223372036854775808", "-5", "0x10"],
    "numeric": ["1.50", "-0.5", ".5", "5.", "1e5", "NaN", "Infinity", "00012.3400", "1" * 40],
    "boolean": ["true", "false", "t", "f", "yes", "no", "1", "0", "TRUE", "on", "y", "2"],
    "date": ["2024-02-29", "2023-02-29", "2024-02-30", "2024-04-31", "0000-01-01", "2024-1-1", "20240101"],
    "timestamptz": [
        "2024-01-01T10:00:00Z",
        "2024-01-01 10:00:00+01:00",
        "2024-01-01T10:00:00.123456-14:00",
        "2024-01-01T10:00:00.1234567Z",
        "2024-01-01T10:00:00",
        "2024-01-01T24:00:00Z",
        "2024-01-01T10:00:60Z",
        "2023-02-29T10:00:00Z",
        "now",
        "epoch",
    ],
    "uuid": [
        "12345678-1234-1234-1234-1234567890ab",
        "12345678-1234-1234-1234-1234567890AB",
        "{12345678-1234-1234-1234-1234567890ab}",
        "123456781234123412341234567890ab",
    ],
    "text": ["héllo", "  spaced  ", "\\N", "NULL", "\\.", "a\\.b", "tab\there"],
}


def read(data: bytes, columns: list[Column], **options: Any) -> tuple[list[Row | BadRow], set[int]]:
    """Every row in line order, and the lines the fast path took."""
    found: list[Row | BadRow] = []
    fast: set[int] = set()
    for item in read_rows(io.BytesIO(data), columns, **options):
        if isinstance(item, Fast):
            rows = list(item.exact())
            fast.update(row.line if isinstance(row, BadRow) else row[0] for row in rows)
            found.extend(rows)
        else:
            found.append(item)
    return sorted(found, key=lambda row: row.line if isinstance(row, BadRow) else row[0]), fast


def in_postgresql(connection: psycopg.Connection[Any], kind: str, text: str) -> tuple[bool, Any]:
    try:
        with connection.transaction():
            found = connection.execute(f"SELECT %s::text::{PG_TYPES.get(kind, kind)}", [text]).fetchone()
    except psycopg.errors.DataError:
        return False, None
    return True, found[0] if found else None


@pytest.mark.parametrize("kind", list(CANDIDATES))
def test_what_the_fast_path_takes_python_and_postgresql_read_alike(kind: str) -> None:
    columns = [Column("v", kind), Column("w", "text")]
    taken = 0
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for text in CANDIDATES[kind]:
            [row], fast = read(f"v,w\n{text},x\n".encode(), columns)
            if not fast:
                continue
            taken += 1
            pg_ok, value = in_postgresql(connection, kind, text)
            assert isinstance(row, tuple) == pg_ok, f"{kind} {text!r}: python {row}, postgresql {value!r}"
            if isinstance(row, tuple):
                assert row[1][0] == value, f"{kind} {text!r}"
    assert taken, "the fast path took none of the candidates"


def test_a_clean_file_goes_fast_whatever_the_order_of_its_header() -> None:
    columns = [Column("id", "bigint", required=True), Column("name", "text", max_length=3)]
    rows, fast = read(b"name,id\nann,1\nbob,2\n", columns)
    assert rows == [(2, [1, "ann"]), (3, [2, "bob"])] and fast == {2, 3}
    _, fast = read(b"id,name,extra\n1,ann,x\n", columns)
    assert fast == set()
    rows, fast = read(b"id,name\n1,anne\n2,\n,bob\n", columns)
    assert fast == {3} and [type(row) for row in rows] == [BadRow, tuple, BadRow]


TRICKY = [
    b'id,name\n1,a\n2,"two\nlines"\n3,c\n\n4,d\r\n5,"x""y"\n6,z',
    b'id,name\n1,a\nx,b\n"3","c"\n4,\n,e\n',
    b'id,name\n1,"unended\n2,b\n',
    b"id,name\r1,a\r2,b\r\n3,c\r",
]


@pytest.mark.parametrize("data", TRICKY)
def test_a_file_reads_as_the_exact_path_alone_reads_it(data: bytes) -> None:
    columns = [Column("id", "integer", required=True), Column("name", "text", required=True)]
    fast = _outcome(lambda: read(data, columns)[0])
    exact = _outcome(lambda: read(data, columns, encoding="cp1252")[0])  # cp1252 never goes fast
    assert fast == exact


def test_a_quoted_record_across_a_block_boundary_keeps_every_line_number() -> None:
    columns = [Column("id", "integer", required=True), Column("name", "text", required=True)]
    head = b"id,name\n"
    lines = [b"%d,n\n" % number for number in range(1, BLOCK // 8)]
    body = b"".join(lines)
    cut = body.rfind(b"\n", 0, BLOCK - 40) + 1
    data = head + body[:cut] + b'0,"a\nb\nc"\n' + body[cut:] + b"x,bad\n"
    rows, fast = read(data, columns)
    exact, _ = read(data, columns, encoding="cp1252")
    assert rows == exact and fast
    assert rows[-1] == BadRow(data.count(b"\n"), "id", "x", "not an integer")


def _outcome(run: Any) -> Any:
    try:
        return run()
    except Exception as exc:  # the same error, either way
        return type(exc), str(exc)


def test_an_allowed_value_goes_fast_only_if_its_type_reads_it_too() -> None:
    columns = [Column("v", "boolean", allowed=("true", "on")), Column("w", "text")]
    rows, fast = read(b"v,w\ntrue,x\non,y\n", columns)
    assert fast == {2} and rows[1] == BadRow(3, "v", "on", "not a boolean")
