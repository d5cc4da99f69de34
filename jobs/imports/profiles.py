"""Import profiles as data: the schema a profile is checked by, and its versions.

Saving a profile that differs from its latest version writes the next version; one that does not
is a no-op, so applying the same file of profiles again changes nothing. Every save is audited.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jobs.audit import audit
from jobs.catalogue.maintenance import PLATFORM
from jobs.errors import ConflictError, ImportProfileNotFoundError, InvalidJobError
from jobs.imports.targets import PG_TYPES, check_table
from jobs.models import ImportProfile
from jobs.settings import Settings

IDENTIFIER = validate.Regexp(r"^[a-z_][a-z0-9_]{0,62}$", error="Must be a lower-case SQL identifier.")
NAME = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,63}$", error="Must be lower-case letters, digits and hyphens.")
MODES = ("insert", "upsert", "replace")
MAX_COLUMNS = 200


def _regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"Not a regular expression: {exc}.") from None


class ColumnSpec(Schema):
    name = fields.String(required=True, validate=IDENTIFIER)
    type = fields.String(required=True, validate=validate.OneOf(list(PG_TYPES)))
    required = fields.Boolean(load_default=False)
    max_length = fields.Integer(load_default=None, validate=validate.Range(min=1))
    pattern = fields.String(
        load_default=None, validate=_regex, metadata={"description": "the whole value must match"}
    )
    allowed = fields.List(fields.String(), load_default=None, validate=validate.Length(min=1, max=1000))


class ProfileDefinition(Schema):
    target = fields.String(
        load_default=PLATFORM, metadata={"description": "platform, or a CONVEYOR_IMPORT_TARGETS name"}
    )
    schema = fields.String(load_default="public", validate=IDENTIFIER)
    table = fields.String(required=True, validate=IDENTIFIER)
    columns = fields.List(
        fields.Nested(ColumnSpec), required=True, validate=validate.Length(min=1, max=MAX_COLUMNS)
    )
    keys = fields.List(fields.String(validate=IDENTIFIER), load_default=list)
    mode = fields.String(load_default="insert", validate=validate.OneOf(MODES))

    @validates_schema
    def _keys(self, data: dict[str, Any], **kwargs: Any) -> None:
        names = [column["name"] for column in data.get("columns", [])]
        if len(set(names)) != len(names):
            raise ValidationError("Each column may be named once.", "columns")
        if missing := [key for key in data.get("keys", []) if key not in names]:
            raise ValidationError(f"Keys must be columns of the profile: {', '.join(missing)}.", "keys")
        if data.get("mode") == "upsert" and not data.get("keys"):
            raise ValidationError("An upsert needs keys.", "keys")


class ProfileCreate(ProfileDefinition):
    name = fields.String(required=True, validate=NAME)


def check_name(name: str) -> None:
    """A profile's name from a path or a file, held to the rule a body's name is."""
    try:
        NAME(name)
    except ValidationError:
        raise InvalidJobError(
            {"name": [f"{name!r} is not lower-case letters, digits and hyphens (64 at most)."]}
        ) from None


def normalised(loaded: dict[str, Any]) -> dict[str, Any]:
    """A loaded definition as it is stored and compared: key columns are required."""
    columns = [
        {**column, "required": column["required"] or column["name"] in loaded["keys"]}
        for column in loaded["columns"]
    ]
    return {**loaded, "columns": columns}


def load_definition(body: dict[str, Any]) -> dict[str, Any]:
    """A definition from a file (``conveyor import-profiles apply``); raises InvalidJobError."""
    try:
        return normalised(ProfileDefinition().load(body))
    except ValidationError as exc:
        raise InvalidJobError(exc.normalized_messages()) from None


def find(session: Session, name: str, version: int | None = None) -> ImportProfile | None:
    """The profile's latest version, or the one asked for; None if there is none."""
    statement = select(ImportProfile).where(ImportProfile.name == name)
    if version is not None:
        statement = statement.where(ImportProfile.version == version)
    return session.scalars(statement.order_by(ImportProfile.version.desc()).limit(1)).first()


def latest(session: Session, name: str, version: int | None = None) -> ImportProfile:
    found = find(session, name, version)
    if found is None:
        raise ImportProfileNotFoundError(
            f"No import profile is named {name!r}" + (f" at version {version}." if version else ".")
        )
    return found


def list_latest(session: Session) -> list[ImportProfile]:
    newest = (
        select(ImportProfile.name, func.max(ImportProfile.version).label("version"))
        .group_by(ImportProfile.name)
        .subquery()
    )
    statement = select(ImportProfile).join(
        newest, (ImportProfile.name == newest.c.name) & (ImportProfile.version == newest.c.version)
    )
    return list(session.scalars(statement.order_by(ImportProfile.name)))


def create(
    session: Session, settings: Settings, name: str, definition: dict[str, Any], actor: str
) -> ImportProfile:
    if session.get(ImportProfile, (name, 1)) is not None:
        raise ConflictError(
            f"The import profile {name!r} exists; PUT /v1/import-profiles/{name} saves a new version."
        )
    return _save(session, settings, name, 1, definition, actor)


def save(
    session: Session, settings: Settings, name: str, definition: dict[str, Any], actor: str
) -> tuple[ImportProfile, bool]:
    """The profile's next version, or its latest unchanged; whether one was written."""
    check_name(name)
    try:
        current = latest(session, name)
    except ImportProfileNotFoundError:
        return _save(session, settings, name, 1, definition, actor), True
    if current.definition == definition:
        return current, False
    return _save(session, settings, name, current.version + 1, definition, actor), True


def _save(
    session: Session, settings: Settings, name: str, version: int, definition: dict[str, Any], actor: str
) -> ImportProfile:
    check_table(settings, definition)
    profile = ImportProfile(name=name, version=version, definition=definition, created_by=actor)
    session.add(profile)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError(
            f"Another request saved version {version} of the import profile {name} at the same time: send yours again."
        ) from None
    audit(session, None, actor, "import-profile-save", None, {"profile": name, "version": version})
    return profile
