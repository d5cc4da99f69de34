"""One converter per column, built once per import and called for every cell: a CSV field (a
str, where "" is NULL) or a JSON value in, the Python value psycopg's COPY writes out, or a
``BadValue`` whose message is the reason a bad row gives.

The happy path is one or two plain calls a cell: no regex unless the column has a pattern, and
exceptions only for a bad value (free in Python 3.11 until raised).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tasks.errors import PermanentError

Convert = Callable[[Any], Any]

TYPES = ("text", "integer", "bigint", "numeric", "boolean", "date", "timestamptz", "uuid", "jsonb")
RANGES = {"integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
NOT_A = {
    "text": "not a string",
    "integer": "not an integer",
    "bigint": "not an integer",
    "numeric": "not a number",
    "boolean": "not a boolean",
    "date": "not a date (YYYY-MM-DD)",
    "timestamptz": "not a timestamp",
    "uuid": "not a uuid",
    "jsonb": "not valid JSON",
}
BOOLEANS = {
    **dict.fromkeys(("true", "t", "yes", "1"), True),
    **dict.fromkeys(("false", "f", "no", "0"), False),
}


class BadValue(ValueError):
    """Why one value cannot go into its column."""


@dataclass(frozen=True)
class Column:
    """One column of an import profile. ``max_length``, ``pattern`` (matched against the whole
    value) and ``allowed`` apply to the value as text, before it is converted, whatever the type."""

    name: str
    type: str
    required: bool = False
    max_length: int | None = None
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise PermanentError(
                f"The column {self.name} has the type {self.type!r}, not one of {', '.join(TYPES)}."
            )


def has_bad_bytes(text: str) -> bool:
    """True when the text holds bytes its encoding could not decode: they were read with
    ``surrogateescape``, and a lone surrogate is the one thing UTF-8 cannot encode."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# A converter's failure path: given the text and why it failed, it returns the value instead
# (None for an empty CSV field) or raises. Empty is told there, so the happy path never tests it.
Fail = Callable[[str, str], Any]


def _integer(kind: str) -> Callable[[Fail], Convert]:
    low, high = RANGES[kind]

    def make(fail: Fail) -> Convert:
        def convert(text: str) -> int | None:
            # int() also takes "1_000" and non-ASCII digits, which PostgreSQL may not.
            if text.isascii() and "_" not in text:
                try:
                    value = int(text)
                except ValueError:
                    return fail(text, NOT_A[kind])
                if low <= value <= high:
                    return value
                raise BadValue(f"out of range for {kind}")
            return fail(text, NOT_A[kind])

        return convert

    return make


def _numeric(fail: Fail) -> Convert:
    def convert(text: str) -> Decimal | None:
        if text.isascii() and "_" not in text:
            try:
                value = Decimal(text)
            except InvalidOperation:
                return fail(text, NOT_A["numeric"])
            if value.is_finite():
                return value
        return fail(text, NOT_A["numeric"])

    return convert


def _boolean(fail: Fail) -> Convert:
    def convert(text: str) -> bool | None:
        value = BOOLEANS.get(text)
        if value is None:
            value = BOOLEANS.get(text.lower())
            if value is None:
                return fail(text, NOT_A["boolean"])
        return value

    return convert


def _date(fail: Fail) -> Convert:
    def convert(text: str) -> date | None:
        # fromisoformat also takes 20240131 and 2024-W05-3: the profile promises YYYY-MM-DD.
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        return fail(text, NOT_A["date"])

    return convert


def _timestamptz(fail: Fail) -> Convert:
    def convert(text: str) -> datetime | None:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return fail(text, NOT_A["timestamptz"])
        if value.tzinfo is None:
            raise BadValue("timestamp without a time zone")
        return value

    return convert


def _parsing(parse: Callable[[str], Any], kind: str) -> Callable[[Fail], Convert]:
    def make(fail: Fail) -> Convert:
        def convert(text: str) -> Any:
            try:
                return parse(text)
            except ValueError:
                return fail(text, NOT_A[kind])

        return convert

    return make


def _text(fail: Fail) -> Convert:
    def convert(text: str) -> str | None:
        if not text:
            return fail(text, NOT_A["text"])
        if not text.isascii() and has_bad_bytes(text):
            raise BadValue("bad encoding")
        if "\x00" in text:
            raise BadValue("contains a NUL character, which PostgreSQL text cannot hold")
        return text

    return convert


def refuse_constant(name: str) -> Any:
    """For json.loads: NaN and Infinity are no JSON, and PostgreSQL's jsonb refuses them."""
    raise BadValue(f"{name} is not JSON")


FROM_TEXT: dict[str, Callable[[Fail], Convert]] = {
    "text": _text,
    "integer": _integer("integer"),
    "bigint": _integer("bigint"),
    "numeric": _numeric,
    "boolean": _boolean,
    "date": _date,
    "timestamptz": _timestamptz,
    "uuid": _parsing(uuid.UUID, "uuid"),
    "jsonb": _parsing(lambda text: json.loads(text, parse_constant=refuse_constant), "jsonb"),
}


def text_check(column: Column) -> Callable[[str], None] | None:
    """The column's constraints on a value's text, as one call; None when it has none."""
    limit, pattern, allowed = column.max_length, column.pattern, column.allowed
    if limit is None and pattern is None and allowed is None:
        return None
    matches = re.compile(pattern).fullmatch if pattern is not None else None
    listed = frozenset(allowed) if allowed is not None else None

    def check(text: str) -> None:
        if limit is not None and len(text) > limit:
            raise BadValue(f"longer than {limit} characters")
        if matches is not None and matches(text) is None:
            raise BadValue(f"does not match {pattern}")
        if listed is not None and text not in listed:
            raise BadValue(f"not one of {', '.join(allowed or ())}")

    return check


def _checked(check: Callable[[str], None] | None, convert: Convert) -> Convert:
    if check is None:
        return convert

    def checked(text: str) -> Any:
        if text:  # an empty CSV field is NULL, which no constraint applies to
            check(text)
        return convert(text)

    return checked


def _null(text: str, reason: str) -> None:
    if text:
        raise BadValue(reason)


def _required(text: str, reason: str) -> Any:
    raise BadValue(reason if text else "required")


def _refuse(text: str, reason: str) -> Any:
    raise BadValue(reason)


def csv_cell(column: Column) -> Convert:
    """A CSV field's converter: the empty field is NULL, refused when the column is required."""
    convert = FROM_TEXT[column.type](_required if column.required else _null)
    return _checked(text_check(column), convert)


def json_cell(column: Column) -> Convert:
    """A JSON value's converter: a string is read as a CSV field is (but "" stays ""), a number
    or boolean is taken by the types it fits, an object or array only by jsonb. Null or a
    missing key is NULL, refused when the column is required."""
    check = text_check(column)
    textual = column.type in ("text", "jsonb")  # a JSON string is a string in jsonb too
    from_text = _text(lambda text, reason: text) if textual else FROM_TEXT[column.type](_refuse)
    kind, required = column.type, column.required

    def convert(value: Any) -> Any:
        if value is None:
            if required:
                raise BadValue("required")
            return None
        if check is not None:
            check(value if type(value) is str else json.dumps(plain(value)))
        if type(value) is str:
            return from_text(value)
        return _from_json(kind, value)

    return convert


def plain(value: Any) -> Any:
    """A JSON value as psycopg's jsonb dumper (json.dumps) takes it: JSON lines are parsed with
    their fractions as Decimal, for numeric columns, and Decimal is no JSON type."""
    if type(value) is Decimal:
        return float(value)
    if type(value) is dict:
        return {key: plain(item) for key, item in value.items()}
    if type(value) is list:
        return [plain(item) for item in value]
    return value


def _from_json(kind: str, value: Any) -> Any:
    """A JSON number, boolean, object or array as the column's value, if its type takes it."""
    if kind == "jsonb":
        return plain(value)
    if type(value) is int and kind in RANGES:
        low, high = RANGES[kind]
        if low <= value <= high:
            return value
        raise BadValue(f"out of range for {kind}")
    if kind == "numeric" and type(value) in (int, Decimal):
        return Decimal(value)
    if kind == "boolean" and type(value) is bool:
        return value
    raise BadValue(NOT_A[kind])
