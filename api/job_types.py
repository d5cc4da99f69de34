"""``/v1/job-types``: what can be submitted, with each type's payload JSON schema."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import SECURITY, require
from api.schemas import JobTypeOut
from jobs.catalogue import JOB_TYPES, JobType

blp = Blueprint("job-types", __name__, url_prefix="/v1/job-types", description="Job types.")


def payload_json_schema(job_type: JobType) -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    APISpec("conveyor", "v1", "3.0.3", plugins=[plugin])
    assert plugin.converter is not None
    schema: dict[str, Any] = plugin.converter.schema2jsonschema(job_type.schema)
    return schema


CATALOGUE = [
    {
        "name": jt.name,
        "task_name": jt.task_name,
        "queue": jt.queue,
        "description": jt.description,
        "payload_schema": payload_json_schema(jt),
    }
    for jt in JOB_TYPES.values()
]


@blp.route("")
class JobTypes(MethodView):
    @require("jobs:read")
    @blp.doc(security=SECURITY)
    @blp.response(200, JobTypeOut(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List the job types this deployment accepts."""
        return CATALOGUE
