"""`/v1/job-types`: what can be submitted, with each type's payload JSON schema."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask.views import MethodView

from api.auth import SECURITY, require
from api.schemas import JobTypeOut
from api.strict_json import Blueprint
from jobs.catalogue import JOB_TYPES, JobType, describe, installed_now, payload_json_schema

blp = Blueprint("job-types", __name__, url_prefix="/v1/job-types", description="Job types.")

CATALOGUE = [describe(jt) for jt in JOB_TYPES.values()]


def describe_submission(spec: APISpec, max_batch: int) -> None:
    """Document `POST /v1/jobs` and a batch's items as the server checks them: one
    alternative per job type, each with that type's payload schema, so a client (or a fuzzer)
    knows which payload fits which type. The marshmallow schemas still validate; this only
    makes the document exact."""
    schemas = spec.components.schemas
    common = {
        name: value
        for name, value in schemas["JobCreate"]["properties"].items()
        if name not in ("type", "payload")
    }
    alternatives = [_submission_of(jt, common) for jt in JOB_TYPES.values() if not jt.internal]
    schemas["JobCreate"] = {"anyOf": alternatives}
    keyed = [
        {**one, "properties": {**one["properties"], "idempotency_key": ITEM_KEY}} for one in alternatives
    ]
    schemas["JobBatchItem"] = {"anyOf": keyed}
    jobs = schemas["BatchCreate"]["properties"]["jobs"]
    jobs.update(items={"$ref": "#/components/schemas/JobBatchItem"}, maxItems=max_batch)


ITEM_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
    "description": "this job's Idempotency-Key, as on POST /v1/jobs",
}


def _submission_of(job_type: JobType, common: dict[str, Any]) -> dict[str, Any]:
    payload = payload_json_schema(job_type)
    return {
        "type": "object",
        "title": f"{job_type.name} job",
        "properties": {**common, "type": {"type": "string", "enum": [job_type.name]}, "payload": payload},
        "required": ["type", "payload"] if payload.get("required") else ["type"],
        "additionalProperties": False,
    }


@blp.route("")
class JobTypes(MethodView):
    @require("jobs:read")
    @blp.doc(security=SECURITY)
    @blp.response(200, JobTypeOut(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List the job types this deployment accepts; the OCR types with the language packs
        installed now (a pack added shows within a minute)."""
        return [{**item, **installed_now(JOB_TYPES[item["name"]])} for item in CATALOGUE]
