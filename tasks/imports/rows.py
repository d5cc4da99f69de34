"""The rows of a CSV or JSON Lines file, read as a stream and checked against the import
profile's columns: each is either ``(line, values)``, ready for psycopg's COPY, a ``BadRow``
saying what is wrong with it, or for CSV in UTF-8 a ``Fast`` batch of lines that go to COPY as
they are (fast.py). The file is never held in memory: a block of about a MiB is.

One ``BadRow`` is given per bad row, for the first problem found in it, left to right. Values
come in the columns' order as int, Decimal, bool, date, tz-aware datetime, UUID, str, or for
jsonb the parsed JSON value (dict, list, str, int, float, bool): COPY with
``copy.set_types([...])`` naming the columns' types, so psycopg dumps those as jsonb. A JSON
null, in a jsonb column too, is NULL.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import call
from typing import Any

from jobs.storage.base import Readable
from tasks.errors import PermanentError
from tasks.imports.fast import Fast, Layout, Lines, acceptor, records
from tasks.imports.values import Column, Convert, csv_cell, has_bad_bytes, json_cell, refuse_constant

__all__ = ["BadRow", "Column", "Fast", "Row", "read_rows"]

MIB = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
SHOWN_CHARS = 200
# A field the csv module reads, as long as the fast path takes one (its default is 128 KiB).
csv.field_size_limit(64 * MIB)
FORMATS = ("csv", "jsonl")


@dataclass(frozen=True)
class BadRow:
    """A row that is not imported. ``line`` is 1-based: a CSV record's first physical line (the
    header is line 1), a JSON line's number. ``column`` is None for a problem of the whole row."""

    line: int
    column: str | None
    value: str
    reason: str


Row = tuple[int, list[Any]]


def read_rows(
    stream: Readable,
    columns: list[Column],
    *,
    format: str | None = None,
    delimiter: str = ",",
    quote: str = '"',
    header: bool = True,
    encoding: str = "utf-8",
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Row | BadRow | Fast]:
    """The file's rows. A gzip file is told by its first bytes; a format of None is told by the
    first byte of the content that is not white space (``{`` is JSON Lines, anything else CSV).
    ``on_bytes`` is given the count of bytes read from ``stream`` (compressed, so it can be put
    against the object's size) about once a MiB, and at the end.

    Raises PermanentError for what spoils the whole file: an unknown format or key, a header
    that lacks a required column, CSV that cannot be parsed."""
    if format not in (*FORMATS, None):
        raise PermanentError(f"The format {format!r} is not one of {', '.join(FORMATS)}.")
    binary = _decompressed(io.BufferedReader(_Counted(stream, on_bytes), MIB))
    format = format or _sniffed(binary)
    if format == "csv" and _bom_skipping(encoding) == "utf-8-sig":
        return _csv_rows(Lines(binary), columns, header=header, encoding="utf-8", dialect=(delimiter, quote))
    text = io.TextIOWrapper(binary, encoding=_bom_skipping(encoding), errors="surrogateescape", newline="")
    if format == "csv":
        return _csv_rows(text, columns, header=header, encoding=encoding, dialect=(delimiter, quote))
    return _jsonl_rows(text, columns, encoding=encoding)


class _Counted(io.RawIOBase):
    """The caller's stream as the raw file io's buffering wants, counting what it gives."""

    def __init__(self, stream: Readable, on_bytes: Callable[[int], None] | None):
        self.stream, self.on_bytes = stream, on_bytes
        self.count = self.reported = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.count += size
        if self.on_bytes and (
            self.count - self.reported >= MIB or (size == 0 and self.count > self.reported)
        ):
            self.reported = self.count
            self.on_bytes(self.count)
        return size


def _decompressed(binary: io.BufferedReader) -> io.BufferedReader | gzip.GzipFile:
    if binary.peek(len(GZIP_MAGIC)).startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=binary, mode="rb")
    return binary


def _sniffed(binary: io.BufferedReader | gzip.GzipFile) -> str:
    head = binary.peek(MIB)
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def _bom_skipping(encoding: str) -> str:
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _csv_rows(
    source: Iterator[str], columns: list[Column], *, header: bool, encoding: str, dialect: tuple[str, str]
) -> Iterator[Row | BadRow | Fast]:
    reader = csv.reader(source, delimiter=dialect[0], quotechar=dialect[1])
    positions, width = list(range(len(columns))), len(columns)
    if header:
        names = _header(reader)
        if names is None:
            return
        positions, width = _positions(names, columns), len(names)
    convert = _converter(columns, positions, width, encoding, dialect[0])
    if isinstance(source, Lines):
        source.accept(acceptor(columns, positions, *dialect) if width == len(columns) else None)
        found = records(source, reader, Layout(_in_field_order(columns, positions), *dialect, convert))
    else:
        found = _records(reader)
    try:
        for record in found:
            if isinstance(record, Fast):
                yield record
            elif (row := convert(*record)) is not None:
                yield row
    except csv.Error as exc:
        where = source.number if isinstance(source, Lines) else reader.line_num
        raise PermanentError(f"The CSV cannot be read past line {where}: {exc}.") from None


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Each record with its line: the line after the last record ended, as a quoted newline
    spans lines."""
    end = reader.line_num
    for fields in reader:
        line, end = end + 1, reader.line_num
        yield line, fields


def _in_field_order(columns: list[Column], positions: list[int]) -> tuple[str, ...]:
    return tuple(
        column.name for _, column in sorted(zip(positions, columns, strict=True), key=lambda pair: pair[0])
    )


def _converter(
    columns: list[Column], positions: list[int], width: int, encoding: str, delimiter: str
) -> Callable[[int, list[str]], Row | BadRow | None]:
    """One record's row, its bad row, or None for a blank line (skipped)."""
    cells, pick = [csv_cell(column) for column in columns], _picker(positions, width)

    def convert(line: int, fields: list[str]) -> Row | BadRow | None:
        if len(fields) != width:
            if not fields:
                return None
            reason = f"ragged row: {len(fields)} fields, {width} expected"
            return BadRow(line, None, _shown(delimiter.join(fields)), reason)
        try:
            return line, list(map(call, cells, pick(fields) if pick else fields))
        except ValueError:
            raws = [(fields[index] if index < width else "") for index in positions]
            return _explained(line, raws, columns, cells, encoding)

    return convert


def _header(reader: Any) -> list[str] | None:
    try:
        return next((fields for fields in reader if fields), None)
    except csv.Error as exc:
        raise PermanentError(f"The CSV header cannot be read: {exc}.") from None


def _picker(positions: list[int], width: int) -> Callable[[list[str]], Sequence[str]] | None:
    """What takes the columns' fields from a record, in the columns' order; None when they are
    its first fields in order already. A column the header lacks reads an empty field."""
    if positions == list(range(len(positions))):
        return None
    get = operator.itemgetter(*positions, width)  # the extra index keeps a tuple for one column
    return lambda fields: get([*fields, ""])


def _positions(names: list[str], columns: list[Column]) -> list[int]:
    """Where each column is in the header's fields; an optional column it lacks is put just past
    them. Extra fields are ignored."""
    names = [name.strip() for name in names]
    names[0] = names[0].removeprefix("\ufeff")  # a BOM the declared encoding does not strip
    missing = sorted(column.name for column in columns if column.required and column.name not in names)
    if missing:
        raise PermanentError(f"The header lacks the required columns: {', '.join(missing)}.")
    twice = sorted({column.name for column in columns if names.count(column.name) > 1})
    if twice:
        raise PermanentError(f"The header names these columns more than once: {', '.join(twice)}.")
    return [names.index(column.name) if column.name in names else len(names) for column in columns]


def _jsonl_rows(lines: Iterable[str], columns: list[Column], *, encoding: str) -> Iterator[Row | BadRow]:
    cells = [json_cell(column) for column in columns]
    names = [column.name for column in columns]
    plan = list(zip(cells, names, strict=True))
    for line, text in enumerate(lines, 1):
        if not text or text.isspace():
            continue
        try:
            record = json.loads(text, parse_float=Decimal, parse_constant=refuse_constant)
        except ValueError as exc:
            yield BadRow(line, None, _shown(text.rstrip()), _json_reason(text, exc, encoding))
            continue
        if type(record) is not dict:
            yield BadRow(line, None, _shown(text.rstrip()), "not a JSON object")
            continue
        get = record.get
        try:
            values = [cell(get(name)) for cell, name in plan]
        except ValueError:
            yield _explained(line, [get(name) for name in names], columns, cells, encoding)
            continue
        yield line, values


def _json_reason(text: str, exc: ValueError, encoding: str) -> str:
    if has_bad_bytes(text):
        return f"bad encoding (not {encoding})"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at character {exc.pos + 1}"
    return f"not valid JSON: {exc}"


def _explained(
    line: int, raws: list[Any], columns: list[Column], cells: list[Convert], encoding: str
) -> BadRow:
    """The bad row for a row whose conversion failed: the cells are tried again one at a time
    (this is the slow path, taken by bad rows only) to find the first that fails, and why."""
    for column, cell, raw in zip(columns, cells, raws, strict=True):
        try:
            cell(raw)
        except ValueError as exc:
            if isinstance(raw, str) and has_bad_bytes(raw):
                return BadRow(line, column.name, _shown(raw), f"bad encoding (not {encoding})")
            return BadRow(line, column.name, _shown(raw), str(exc))
    raise AssertionError("a row failed to convert, but each of its cells converts alone")


def _shown(raw: Any) -> str:
    """A value as a bad row shows it: at most 200 characters, undecodable bytes as \\xNN."""
    if not isinstance(raw, str):
        raw = json.dumps(raw, default=str)
    if has_bad_bytes(raw):
        raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return raw[:SHOWN_CHARS]
