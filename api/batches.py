"""`POST /v1/jobs/batch`: many jobs in one request and one transaction (`jobs.service.batches`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from api.auth import SECURITY, current_token, require, type_scope_problem
from api.correlation import request_id
from api.idempotent import run_once
from api.limits import limited
from api.runtime import runtime
from api.schemas import JobOut
from api.strict_json import Blueprint
from jobs.errors import InvalidInputError
from jobs.fields import Flag
from jobs.service.batches import Item, Keys, Outcome, read_item, submit_batch
from jobs.service.schema import JobCreate

JOB_CREATE = JobCreate()
JOB_OUT = JobOut()
KEY_FIELD = "idempotency_key"

blp = Blueprint("job-batches", __name__, url_prefix="/v1/jobs", description="Submit many jobs at once.")


class BatchCreate(Schema):
    jobs = fields.List(
        fields.Raw(),  # each item is checked alone, so atomic: false can list what is not an object
        required=True,
        validate=validate.Length(min=1),
        metadata={
            "description": "each a `POST /v1/jobs` body, with an optional `idempotency_key`; at most CONVEYOR_MAX_BATCH"
        },
    )
    atomic = Flag(
        load_default=True, metadata={"description": "false: submit the valid jobs, list the refused"}
    )


class BatchError(Schema):
    index = fields.Integer()
    errors = fields.Dict()


class BatchOut(Schema):
    ids = fields.List(
        fields.UUID(allow_none=True), metadata={"description": "in the request's order; null if refused"}
    )
    accepted = fields.Integer(metadata={"description": "jobs made by this request"})
    replayed = fields.List(
        fields.Integer(), metadata={"description": "indexes whose key named an existing job"}
    )
    errors = fields.List(fields.Nested(BatchError))


BATCH_OUT = BatchOut()


@blp.route("/batch")
class JobBatch(MethodView):
    @require("jobs:write")
    @limited("jobs:write")
    @blp.doc(security=SECURITY)
    @blp.arguments(BatchCreate())
    @blp.response(202, BatchOut)
    def post(self, body: dict[str, Any]) -> Response:
        """Submit up to CONVEYOR_MAX_BATCH jobs in one transaction, all or none unless
        `atomic` is false. An item's `idempotency_key` is that job's `Idempotency-Key` (a
        replay returns the job it made); `Idempotency-Key` on the request makes the whole
        request safe to retry. The upkeep types need the `ops` scope, `restore-backup`
        `admin`."""
        settings = runtime().settings
        if len(body["jobs"]) > settings.max_batch:
            message = f"A batch holds at most {settings.max_batch} jobs (CONVEYOR_MAX_BATCH)."
            raise InvalidInputError(message, {"jobs": [message]})
        items = [_item(raw) for raw in body["jobs"]]
        keys = Keys(current_token().id, timedelta(hours=settings.idempotency_ttl_hours))

        def submit(session: Any) -> tuple[Any, int, dict[str, str]]:
            return _view(submit_batch(session, settings, items, keys, atomic=body["atomic"])), 202, {}

        return run_once(submit)


def _item(raw: Any) -> Item:
    item = read_item(raw, request_id())
    problem = _scope_problem(item.submission.type) if item.submission else None
    return Item(None, problem) if problem else item


def _scope_problem(job_type: str) -> dict[str, list[str]] | None:
    problem = type_scope_problem(job_type)
    return {"type": [problem]} if problem else None


def _view(outcome: Outcome) -> Any:
    return BATCH_OUT.dump(
        {
            "ids": outcome.ids,
            "accepted": sum(outcome.accepted(index) for index in range(len(outcome.ids))),
            "replayed": sorted(outcome.replayed),
            "errors": [
                {"index": index, "errors": errors} for index, errors in sorted(outcome.errors.items())
            ],
        }
    )
