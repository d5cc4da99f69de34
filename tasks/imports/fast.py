"""The fast path for CSV in UTF-8: the lines of a clean file are checked by one regular
expression built from the profile's columns and go to PostgreSQL's COPY as they were read,
numbered, never converted in Python. A line the expression refuses, and so every record with a
quote in it, takes the exact path of rows.py; so does every line of a file whose header is not
the profile's columns in some order.

The expression is narrower than both the Python converters and PostgreSQL: what it takes, both
take and read alike (no quotes, no spaces, ISO dates, canonical UUIDs, booleans spelled as
values.BOOLEANS spells them). What digits cannot tell, a 30th of February or a number too big
for the table's column, PostgreSQL refuses; loading.py then sends that batch the exact way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

from jobs.storage.base import Readable
from tasks.imports.values import Column

BLOCK = 1 << 20
BOM = b"\xef\xbb\xbf"
# Delimiters and quotes that no type's expression below uses, so a field's end is never in doubt.
DELIMITERS, QUOTES = (",", ";", "|", "\t"), ('"', "'")
_DATE = rb"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_TIME = rb"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])"
_HEX = rb"[0-9a-fA-F]"
TYPE_PATTERNS = {
    "integer": rb"-?[0-9]{1,9}",
    "bigint": rb"-?[0-9]{1,18}",
    "numeric": rb"-?[0-9]{1,300}(?:\.[0-9]{1,300})?",
    "boolean": b"(?:" + b"|".join((b"true", b"t", b"yes", b"1", b"false", b"f", b"no", b"0")) + b")",
    "date": _DATE,
    "timestamptz": _DATE + rb"[T ]" + _TIME,
    "uuid": _HEX + rb"{8}-" + (_HEX + rb"{4}-") * 3 + _HEX + rb"{12}",
    "jsonb": rb"(?!)",  # JSON in CSV is quoted, almost always
}


@dataclass(frozen=True)
class Layout:
    """How a file's accepted lines are read: its fields' columns in order, its delimiter and
    quote, and the exact path's conversion of one record."""

    names: tuple[str, ...]
    delimiter: str
    quote: str
    convert: Callable[[int, list[str]], Any]


@dataclass(frozen=True)
class Fast:
    """Lines the expression took: ``data`` is them numbered, for ``COPY (line, names…)`` in CSV;
    ``exact()`` gives them as the exact path does, for when PostgreSQL refuses the batch."""

    data: bytes
    count: int
    runs: tuple[tuple[int, list[bytes]], ...]
    layout: Layout

    def exact(self) -> Iterator[Any]:
        convert, delimiter = self.layout.convert, self.layout.delimiter
        for first, lines in self.runs:
            for line, raw in zip(count(first), lines):
                yield convert(line, raw.decode("utf-8", "surrogateescape").rstrip("\r\n").split(delimiter))


class Lines:
    """The input's lines as bytes, a block at a time. ``csv.reader`` takes them one by one,
    decoded; ``take_fast`` takes the run of accepted lines from here. ``number`` counts the lines
    taken, so a record's line is told whichever way it was read."""

    def __init__(self, binary: Readable):
        self.binary, self.carry, self.first = binary, b"", True
        self.pending: list[bytes] = []
        self.flags: list[bool] = []
        self.at = self.number = 0
        self.accepts: Callable[[bytes], Any] | None = None

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        while self.at >= len(self.pending):
            if not self.fill():
                raise StopIteration
        line = self.pending[self.at]
        self.at += 1
        self.number += 1
        return line.decode("utf-8", "surrogateescape")

    def fill(self) -> bool:
        """The next block's whole lines (none, for a line longer than a block); False at the end."""
        data = self.binary.read(BLOCK)
        if self.first:
            data, self.first = data.removeprefix(BOM), False
        if not data:
            data, self.carry = self.carry, b""
            cut = len(data)
        else:
            data = self.carry + data
            # A CR alone ends a line too (old Mac files), but the block's last one may be a CRLF's.
            cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
            self.carry = data[cut:]
        self.pending, self.at = data[:cut].splitlines(keepends=True), 0
        self.accept(self.accepts)
        return bool(data)

    def accept(self, accepts: Callable[[bytes], Any] | None) -> None:
        """Check each line of the block with ``accepts`` (None takes none), from now on."""
        self.accepts = accepts
        self.flags = list(map(bool, map(accepts, self.pending))) if accepts else [False] * len(self.pending)

    def take_fast(self) -> list[bytes]:
        try:
            end = self.flags.index(False, self.at)
        except ValueError:
            end = len(self.pending)
        taken = self.pending[self.at : end]
        self.at = end
        self.number += len(taken)
        return taken


def records(
    lines: Lines, reader: Iterator[list[str]], layout: Layout
) -> Iterator[tuple[int, list[str]] | Fast]:
    """The records after the header: each block's accepted runs as one ``Fast``, the others as
    (line, fields) from ``reader`` (which reads ``lines``, as many as a quoted field spans)."""
    runs: list[tuple[int, list[bytes]]] = []
    while lines.at < len(lines.pending) or lines.fill():
        first = lines.number + 1
        taken = lines.take_fast()
        if taken:
            runs.append((first, taken))
        if lines.at < len(lines.pending):
            line = lines.number + 1
            fields = next(reader, None)
            if fields is not None:
                yield line, fields
        elif runs:
            yield _batch(runs, layout)
            runs = []
    if runs:
        yield _batch(runs, layout)


def _batch(runs: list[tuple[int, list[bytes]]], layout: Layout) -> Fast:
    template = b"%d" + layout.delimiter.encode() + b"%b"  # no delimiter of DELIMITERS is a %
    numbered = b"".join(b"".join(map(template.__mod__, zip(count(first), lines))) for first, lines in runs)
    # COPY takes the line ending of a batch's first line for all of it; no accepted line holds a CR.
    numbered = numbered.replace(b"\r\n", b"\n")
    return Fast(numbered, sum(len(lines) for _, lines in runs), tuple(runs), layout)


def acceptor(
    columns: list[Column], positions: list[int], delimiter: str, quote: str
) -> Callable[[bytes], Any] | None:
    """The check of a whole line, for a file whose fields are the profile's columns in some
    order (``positions``: each column's field); None when the fast path cannot be taken."""
    if delimiter not in DELIMITERS or quote not in QUOTES or sorted(positions) != list(range(len(columns))):
        return None
    field = b"[^" + re.escape(delimiter + quote).encode() + rb"\r\n\x00]"
    by_field = sorted(zip(positions, columns, strict=True), key=lambda pair: pair[0])
    cells = [_cell(column, field) for _, column in by_field]
    line = rb"(?![\r\n]|\\\.)" + re.escape(delimiter).encode().join(cells) + rb"\r?\n"
    match = re.compile(line).fullmatch
    checks = [
        (index, re.compile(column.pattern).fullmatch)
        for index, (_, column) in enumerate(by_field)
        if column.pattern
    ]
    if not checks:
        return match
    separator = delimiter.encode()

    def accepts(raw: bytes) -> bool:
        if not match(raw):
            return False
        fields = raw.rstrip(b"\r\n").split(separator)
        return all(
            not fields[i] or check(fields[i].decode("utf-8", "surrogateescape")) for i, check in checks
        )

    return accepts


def _cell(column: Column, field: bytes) -> bytes:
    if column.allowed is not None:
        plain = field + b"+" if column.type == "text" else TYPE_PATTERNS[column.type]
        listed = [value.encode() for value in column.allowed if value and re.fullmatch(plain, value.encode())]
        cell = b"(?:" + b"|".join(map(re.escape, listed)) + b")" if listed else rb"(?!)"
    elif column.type == "text":
        least, limit = int(column.required), column.max_length  # an empty field is NULL
        return field + (b"{%d,%d}" % (least, limit) if limit is not None else b"{%d,}" % least)
    else:
        cell = TYPE_PATTERNS[column.type]
    if column.max_length is not None:
        cell = b"(?=" + field + b"{0,%d}(?!" % column.max_length + field + b"))" + cell
    return cell if column.required else b"(?:" + cell + b")?"
