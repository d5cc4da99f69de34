"""A submission as callers write it, the one schema of ``POST /v1/jobs``, a batch's items and
``conveyor submit --from-file`` (the payload is then checked by its type's own schema), and a
job as they read it, which an idempotency key replays whichever way the job was submitted."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from jobs.broker.queues import MAX_PRIORITY, QUEUES
from jobs.catalogue import JOB_TYPES
from jobs.fields import Text, Timestamp
from jobs.models import JobState


class JobCreate(Schema):
    type = Text(
        required=True,
        metadata={
            "enum": [name for name, jt in JOB_TYPES.items() if not jt.internal],
            "description": "see GET /v1/job-types",
        },
    )
    payload = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={"description": "checked by the type's payload schema (GET /v1/job-types)"},
    )
    queue = Text(validate=validate.OneOf(QUEUES), metadata={"description": "default: the type's own queue"})
    priority = fields.Integer(
        strict=True,
        load_default=0,
        validate=validate.Range(min=0, max=MAX_PRIORITY),
        metadata={
            "description": "higher runs sooner on Redis/Valkey; RabbitMQ's quorum queues and the embedded broker keep order"
        },
    )
    run_at = Timestamp()
    max_attempts = fields.Integer(strict=True, validate=validate.Range(min=1, max=100))
    correlation_id = Text(validate=validate.Length(max=200))
    causation_id = Text(validate=validate.Length(max=200))


class ErrorInfo(Schema):
    type = fields.String()
    message = fields.String()


class ProgressInfo(Schema):
    percent = fields.Integer()
    message = fields.String(allow_none=True)


class JobOut(Schema):
    id = fields.UUID()
    type = fields.String()
    queue = fields.String()
    priority = fields.Integer()
    state = fields.String(metadata={"enum": [s.value for s in JobState]})
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    payload = fields.Dict()
    result = fields.Raw(allow_none=True)
    error = fields.Nested(ErrorInfo, allow_none=True)
    progress = fields.Nested(ProgressInfo)
    cancel_requested = fields.Boolean()
    correlation_id = fields.String(allow_none=True)
    causation_id = fields.String(allow_none=True)
    worker = fields.String(allow_none=True)
    run_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    next_retry_at = fields.DateTime(allow_none=True)
    requeued_from = fields.UUID(
        allow_none=True, metadata={"description": "the dead letter this run was requeued from"}
    )
    parent_id = fields.UUID(
        allow_none=True, metadata={"description": "the job that fanned this one out, which joins it"}
    )
