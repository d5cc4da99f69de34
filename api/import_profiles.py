"""`/v1/import-profiles` (scope `ops`): what an import loads a file into, versioned; each
save is checked against its table and audited."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from api.auth import SECURITY, actor, require
from api.runtime import runtime
from api.strict_json import Blueprint
from jobs.imports import profiles

blp = Blueprint("import-profiles", __name__, url_prefix="/v1/import-profiles", description="Import profiles.")


class ProfileOut(profiles.ProfileCreate):
    version = fields.Integer()
    created_by = fields.String()
    created_at = fields.DateTime()


class ProfileList(Schema):
    items = fields.List(fields.Nested(ProfileOut))


class VersionQuery(Schema):
    version = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "default: the latest"},
    )


@blp.route("")
class Profiles(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, ProfileList)
    def get(self) -> dict[str, Any]:
        """The latest version of every profile, by name."""
        with runtime().sessions() as session:
            return {"items": [profile.to_dict() for profile in profiles.list_latest(session)]}

    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(profiles.ProfileCreate())
    @blp.response(201, ProfileOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a profile (version 1); its table must exist and fit it (else a 422 naming the column)."""
        name = body.pop("name")
        rt = runtime()
        with rt.sessions.begin() as session:
            return profiles.create(session, rt.settings, name, profiles.normalised(body), actor()).to_dict()


@blp.route("/<string:name>")
class ProfileByName(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(VersionQuery(), location="query")
    @blp.response(200, ProfileOut)
    def get(self, query: dict[str, Any], name: str) -> dict[str, Any]:
        """A profile's latest version, or the one asked for."""
        profiles.check_name(name)
        with runtime().sessions() as session:
            return profiles.latest(session, name, query["version"]).to_dict()

    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(profiles.ProfileDefinition())
    @blp.response(200, ProfileOut)
    def put(self, body: dict[str, Any], name: str) -> dict[str, Any]:
        """Save the profile's next version (created if new); the same definition again changes nothing."""
        profiles.check_name(name)
        rt = runtime()
        with rt.sessions.begin() as session:
            profile, _ = profiles.save(session, rt.settings, name, profiles.normalised(body), actor())
            return profile.to_dict()
