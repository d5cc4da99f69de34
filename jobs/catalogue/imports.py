"""The ``import`` job type: a CSV or JSON Lines file loaded into a table an import profile names."""

from __future__ import annotations

import codecs

from marshmallow import Schema, ValidationError, fields, validate

from jobs.catalogue.base import JobType
from jobs.catalogue.inputs import FileOrUrl

MAX_VERSION = 2**31 - 1


def _encoding(value: str) -> None:
    """A text encoding Python knows (``rot13`` and the like transform text, they do not decode it)."""
    try:
        found = codecs.lookup(value)
    except LookupError:
        raise ValidationError(f"Unknown encoding {value!r}.") from None
    if not found._is_text_encoding:
        raise ValidationError(f"{value!r} is not a text encoding.")


ONE_CHARACTER = validate.Length(equal=1)


class CsvOptions(Schema):
    delimiter = fields.String(load_default=",", validate=ONE_CHARACTER)
    quote = fields.String(load_default='"', validate=ONE_CHARACTER)
    header = fields.Boolean(load_default=True)
    encoding = fields.String(load_default="utf-8", validate=[validate.Length(max=40), _encoding])


class ImportPayload(FileOrUrl):
    profile = fields.String(required=True, metadata={"example": "people"})
    version = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_VERSION),
        metadata={"description": "default: the latest"},
    )
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(["csv", "jsonl"]),
        metadata={"description": "default: told by the content"},
    )
    csv = fields.Nested(CsvOptions, load_default=lambda: CsvOptions().load({}))
    max_bad_rows = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0),
        metadata={"description": "default 0, unless max_bad_ratio is given"},
    )
    max_bad_ratio = fields.Float(load_default=None, validate=validate.Range(min=0, max=1))
    dry_run = fields.Boolean(load_default=False)


JOB_TYPES = (
    JobType(
        name="import",
        task_name="conveyor.imports.import_file",
        queue="imports",
        schema=ImportPayload,
        description=(
            "Load a CSV or JSON Lines file (gzip too) into the table of an import profile, merged in one "
            "transaction; every bad row is reported in a CSV file."
        ),
    ),
)
