"""Request and response schemas; the OpenAPI document is generated from these."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from jobs.models import JobState


class JobCreate(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    payload = fields.Dict(keys=fields.String(), load_default=dict)
    queue = fields.String(validate=validate.Length(min=1, max=64))
    priority = fields.Integer(load_default=0, validate=validate.Range(min=0, max=9))
    run_at = fields.AwareDateTime()
    max_attempts = fields.Integer(validate=validate.Range(min=1, max=100))
    correlation_id = fields.String(validate=validate.Length(max=200))
    causation_id = fields.String(validate=validate.Length(max=200))


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


class JobQuery(Schema):
    type = fields.String()
    state = fields.String(validate=validate.OneOf([s.value for s in JobState]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String()


class JobPage(Schema):
    items = fields.List(fields.Nested(JobOut))
    next_cursor = fields.String(allow_none=True)


class JobTypeOut(Schema):
    name = fields.String()
    task_name = fields.String()
    queue = fields.String()
    description = fields.String()
    payload_schema = fields.Dict()


class DeadLetterQuery(Schema):
    queue = fields.String()
    type = fields.String()
    error = fields.String(metadata={"description": "an error type, or text in the error message"})
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()
    state = fields.String(load_default="dead", validate=validate.OneOf(["dead", "requeued", "purged"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String()


class AuditOut(Schema):
    at = fields.DateTime()
    actor = fields.String()
    action = fields.String()
    reason = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)


class DeadLetterOut(Schema):
    id = fields.UUID()
    state = fields.String()
    job_id = fields.UUID(allow_none=True)
    type = fields.String(allow_none=True)
    queue = fields.String()
    task_name = fields.String(allow_none=True)
    reason = fields.String()
    error_type = fields.String()
    error = fields.String()
    traceback = fields.String(allow_none=True)
    attempts = fields.Integer()
    worker = fields.String(allow_none=True)
    first_failed_at = fields.DateTime()
    last_failed_at = fields.DateTime()
    message_id = fields.String()
    message = fields.Dict()
    created_at = fields.DateTime()
    requeues = fields.List(fields.Nested(AuditOut))
    audit = fields.List(fields.Nested(AuditOut))


class DeadLetterPage(Schema):
    items = fields.List(fields.Nested(DeadLetterOut))
    next_cursor = fields.String(allow_none=True)


class DeadLetterStats(Schema):
    total = fields.Integer()
    queue = fields.Dict(keys=fields.String(), values=fields.Integer())
    type = fields.Dict(keys=fields.String(), values=fields.Integer())
    error = fields.Dict(keys=fields.String(), values=fields.Integer())


class Requeue(Schema):
    payload = fields.Dict(keys=fields.String())
    reason = fields.String(validate=validate.Length(max=500))


class BulkRequeue(Schema):
    queue = fields.String()
    type = fields.String()
    error = fields.String()
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()
    all = fields.Boolean(
        load_default=False, metadata={"description": "requeue everything when no filter is given"}
    )
    dry_run = fields.Boolean(load_default=False)
    reason = fields.String(validate=validate.Length(max=500))


class BulkRequeueResult(Schema):
    dry_run = fields.Boolean()
    matched = fields.Integer()
    requeued = fields.Integer()
    skipped = fields.List(fields.Dict())


class Purge(Schema):
    reason = fields.String(validate=validate.Length(max=500))
