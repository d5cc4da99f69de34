"""The import job's reader on files made in memory: every type read or refused with its reason,
each constraint, the line a bad row is on, and what spoils a whole file."""

from __future__ import annotations

import gzip
import io
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tasks.errors import PermanentError
from tasks.imports.rows import BadRow, Column, Fast, Row, read_rows

PEOPLE = [Column("id", "bigint", required=True), Column("name", "text")]


def rows(data: bytes, columns: list[Column] = PEOPLE, **options: Any) -> list[Row | BadRow]:
    """Every row in line order, the fast path's as the exact path reads them."""
    found: list[Row | BadRow] = []
    for item in read_rows(io.BytesIO(data), columns, **options):
        found.extend(item.exact() if isinstance(item, Fast) else [item])
    return sorted(found, key=lambda row: row.line if isinstance(row, BadRow) else row[0])


def one_cell(kind: str, text: str, **constraints: Any) -> Any:
    """The value of ``text`` in a column of ``kind``, or the bad row's reason."""
    # A second column, since a lone empty field is a blank line, which is skipped.
    [row] = rows(f"v,w\n{text},w\n".encode(), [Column("v", kind, **constraints), Column("w", "text")])
    return row.reason if isinstance(row, BadRow) else row[1][0]


def one_json(kind: str, value: str, **constraints: Any) -> Any:
    [row] = rows(f'{{"v": {value}}}\n'.encode(), [Column("v", kind, **constraints)])
    return row.reason if isinstance(row, BadRow) else row[1][0]


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("text", "héllo", "héllo"),
        ("integer", "-2147483648", -(2**31)),
        ("integer", "2147483647", 2**31 - 1),
        ("bigint", "9223372036854775807", 2**63 - 1),
        ("numeric", "-12.50", Decimal("-12.50")),
        ("numeric", "1e3", Decimal("1e3")),
        ("boolean", "TRUE", True),
        ("boolean", "f", False),
        ("boolean", "Yes", True),
        ("boolean", "0", False),
        ("date", "2024-02-29", date(2024, 2, 29)),
        ("timestamptz", "2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("timestamptz", "2024-01-02 03:04:05+02:00", datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("uuid", "12345678-1234-5678-1234-567812345678", uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ("jsonb", '"{""a"": [1, 2]}"', {"a": [1, 2]}),
        ("text", "", None),
        ("integer", "", None),
    ],
)
def test_each_type_reads_its_values(kind: str, text: str, value: Any) -> None:
    assert one_cell(kind, text) == value


def test_a_timestamp_keeps_its_offset() -> None:
    value = one_cell("timestamptz", "2024-01-02T03:04:05+02:00")
    assert value.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [
        ("integer", "12x", "not an integer"),
        ("integer", "1.5", "not an integer"),
        ("integer", "1_000", "not an integer"),
        ("integer", "١٢", "not an integer"),
        ("integer", "2147483648", "out of range for integer"),
        ("bigint", "-9223372036854775809", "out of range for bigint"),
        ("numeric", "NaN", "not a number"),
        ("numeric", "Infinity", "not a number"),
        ("numeric", "1,5", "ragged row: 3 fields, 2 expected"),
        ("numeric", "abc", "not a number"),
        ("boolean", "maybe", "not a boolean"),
        ("date", "2024-02-30", "not a date (YYYY-MM-DD)"),
        ("date", "20240201", "not a date (YYYY-MM-DD)"),
        ("timestamptz", "2024-01-02T03:04:05", "timestamp without a time zone"),
        ("timestamptz", "yesterday", "not a timestamp"),
        ("uuid", "1234", "not a uuid"),
        ("jsonb", "{a}", "not valid JSON"),
        ("text", "a\x00b", "contains a NUL character, which PostgreSQL text cannot hold"),
        ("jsonb", "NaN", "not valid JSON"),
    ],
)
def test_each_type_refuses_a_bad_value_saying_why(kind: str, text: str, reason: str) -> None:
    assert one_cell(kind, text) == reason


@pytest.mark.parametrize(
    ("constraints", "good", "bad", "reason"),
    [
        ({"required": True}, "x", "", "required"),
        ({"max_length": 3}, "abc", "abcd", "longer than 3 characters"),
        ({"pattern": "^[A-Z]+$"}, "ABC", "ABc", "does not match ^[A-Z]+$"),
        ({"pattern": "[A-Z]"}, "A", "AB", "does not match [A-Z]"),
        ({"allowed": ("a", "b")}, "b", "c", "not one of a, b"),
    ],
)
def test_each_constraint_is_applied(constraints: dict[str, Any], good: str, bad: str, reason: str) -> None:
    assert one_cell("text", good, **constraints) == good
    assert one_cell("text", bad, **constraints) == reason


def test_constraints_apply_to_the_text_before_conversion() -> None:
    assert one_cell("integer", "07", pattern=r"\d{2}") == 7
    assert one_cell("integer", "7", pattern=r"\d{2}") == r"does not match \d{2}"
    assert one_cell("integer", "", pattern=r"\d{2}") is None


def test_a_bad_row_names_its_line_column_and_value() -> None:
    got = rows(b"id,name\n1,a\nx,b\n3,c\n")
    assert got == [(2, [1, "a"]), BadRow(3, "id", "x", "not an integer"), (4, [3, "c"])]


def test_a_long_bad_value_is_cut_to_200_characters() -> None:
    [row] = rows(b"id,name\n" + b"9" * 500 + b",a\n")
    assert isinstance(row, BadRow) and row.value == "9" * 200


def test_a_ragged_row_is_a_bad_row() -> None:
    got = rows(b"id,name\n1,a,extra\n2\n3,c\n")
    assert got == [
        BadRow(2, None, "1,a,extra", "ragged row: 3 fields, 2 expected"),
        BadRow(3, None, "2", "ragged row: 1 fields, 2 expected"),
        (4, [3, "c"]),
    ]


def test_line_numbers_count_the_lines_a_quoted_newline_spans_and_blank_lines() -> None:
    got = rows(b'id,name\n1,"two\nlines"\n\n2,b\nx,c\n')
    assert got == [(2, [1, "two\nlines"]), (5, [2, "b"]), BadRow(6, "id", "x", "not an integer")]


def test_crlf_line_ends_are_read_and_kept_inside_quotes() -> None:
    assert rows(b'id,name\r\n1,a\r\n2,"b\r\nc"\r\n') == [(2, [1, "a"]), (3, [2, "b\r\nc"])]


def test_a_utf8_bom_is_skipped() -> None:
    assert rows("\ufeffid,name\n1,é\n".encode()) == [(2, [1, "é"])]


def test_undecodable_bytes_are_a_bad_row_and_reading_goes_on() -> None:
    got = rows(b"id,name\n1,caf\xe9\n2,ok\n")
    assert got == [BadRow(2, "name", "caf\\xe9", "bad encoding (not utf-8)"), (3, [2, "ok"])]


def test_undecodable_bytes_in_a_number_say_bad_encoding() -> None:
    assert rows(b"id,name\n1\xff,a\n") == [BadRow(2, "id", "1\\xff", "bad encoding (not utf-8)")]


def test_a_declared_latin1_file_is_decoded() -> None:
    assert rows("id,name\n1,café\n".encode("latin-1"), encoding="latin-1") == [(2, [1, "café"])]


def test_a_gzip_file_is_told_by_its_first_bytes() -> None:
    assert rows(gzip.compress(b"id,name\n1,a\n")) == [(2, [1, "a"])]


def test_a_gzip_json_lines_file_is_sniffed_after_decompression() -> None:
    assert rows(gzip.compress(b' \n{"id": 1, "name": "a"}\n')) == [(2, [1, "a"])]


def test_other_delimiters_and_quotes_are_read() -> None:
    assert rows(b"id;name\n1;'a;b'\n", delimiter=";", quote="'") == [(2, [1, "a;b"])]


def test_without_a_header_fields_are_the_columns_in_order() -> None:
    assert rows(b"1,a\n2,b\n", header=False) == [(1, [1, "a"]), (2, [2, "b"])]


def test_the_header_maps_names_to_columns_and_extra_fields_are_ignored() -> None:
    columns = [*PEOPLE, Column("note", "text")]
    assert rows(b"extra,name,id\nz,a,1\n", columns) == [(2, [1, "a", None])]


def test_a_bad_row_under_a_reordered_header_names_its_column() -> None:
    assert rows(b"name,id\na,x\n") == [BadRow(2, "id", "x", "not an integer")]


def test_a_header_lacking_required_columns_is_a_permanent_error() -> None:
    columns = [*PEOPLE, Column("amount", "numeric", required=True)]
    with pytest.raises(PermanentError, match=r"^The header lacks the required columns: amount, id\.$"):
        rows(b"name\na\n", columns)


def test_a_header_naming_a_column_twice_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="more than once: id"):
        rows(b"id,name,id\n1,a,2\n")


def test_a_header_only_file_and_an_empty_file_have_no_rows() -> None:
    assert rows(b"id,name\n") == []
    assert rows(b"") == []
    assert rows(b"", format="jsonl") == []
    assert rows(gzip.compress(b"")) == []


def test_json_lines_map_keys_to_columns_and_a_missing_key_is_null() -> None:
    columns = [*PEOPLE, Column("note", "text")]
    got = rows(b'{"id": 1, "name": "a", "other": 5}\n\n{"id": 2, "name": ""}\n', columns)
    assert got == [(1, [1, "a", None]), (3, [2, "", None])]


def test_json_lines_nest_objects_and_arrays_only_into_jsonb() -> None:
    columns = [Column("id", "integer"), Column("doc", "jsonb"), Column("name", "text")]
    got = rows(b'{"id": 1, "doc": {"a": [1, 2.5, null]}}\n{"id": 2, "name": {"x": 1}}\n', columns)
    assert got == [(1, [1, {"a": [1, 2.5, None]}, None]), BadRow(2, "name", '{"x": 1}', "not a string")]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("integer", "7", 7),
        ("integer", '"7"', 7),
        ("integer", "7.0", "not an integer"),
        ("integer", "true", "not an integer"),
        ("integer", "4294967296", "out of range for integer"),
        ("numeric", "12.345678901234567890123", Decimal("12.345678901234567890123")),
        ("numeric", "3", Decimal(3)),
        ("boolean", "false", False),
        ("boolean", "1", "not a boolean"),
        ("date", '"2024-01-31"', date(2024, 1, 31)),
        ("date", "20240131", "not a date (YYYY-MM-DD)"),
        (
            "timestamptz",
            '"2024-01-31T00:00:00-05:00"',
            datetime(2024, 1, 31, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("jsonb", '"text"', "text"),
        ("jsonb", "[1, {}]", [1, {}]),
        ("text", "null", None),
        ("text", "5", "not a string"),
    ],
)
def test_json_values_are_taken_by_the_types_they_fit(kind: str, value: str, expected: Any) -> None:
    assert one_json(kind, value) == expected


def test_a_json_line_that_is_not_an_object_is_a_bad_row() -> None:
    got = rows(b'{"id": 1}\n[1, 2]\n{"id": \n', format="jsonl")
    assert got[1] == BadRow(2, None, "[1, 2]", "not a JSON object")
    assert isinstance(got[2], BadRow) and got[2].reason.startswith("not valid JSON")


def test_a_json_required_key_must_be_there() -> None:
    assert rows(b'{"name": "a"}\n') == [BadRow(1, "id", "null", "required")]


def test_a_json_line_with_undecodable_bytes_is_a_bad_row() -> None:
    got = rows(b'{"id": 1, "name": "caf\xe9"}\n{"id": 2}\n')
    assert got == [BadRow(1, "name", "caf\\xe9", "bad encoding (not utf-8)"), (2, [2, None])]


def test_an_unknown_format_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="format 'xml'"):
        rows(b"id,name\n", format="xml")


def test_an_unknown_column_type_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="money"):
        Column("price", "money")


def test_progress_is_told_in_bytes_read_about_once_a_mib() -> None:
    data = gzip.compress(b"id,name\n" + b"".join(b"%d,name\n" % i for i in range(400_000)))
    seen: list[int] = []
    assert len(rows(data, on_bytes=seen.append)) == 400_000
    assert seen[-1] == len(data)
    assert len(seen) <= len(data) // (1 << 20) + 2
    assert seen == sorted(seen)
