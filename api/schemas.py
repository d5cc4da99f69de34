"""Request and response schemas; the OpenAPI document is generated from these."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from jobs.fields import Flag, Text, Timestamp
from jobs.models import JobState
from jobs.service.schema import JobOut

CURSOR = {"description": "next_cursor from the previous page; any other value is a 400"}


class PageQuery(Schema):
    """One page of a list, newest first."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = Text(metadata=CURSOR)


class JobQuery(PageQuery):
    type = Text()
    state = fields.String(validate=validate.OneOf([s.value for s in JobState]))
    correlation_id = Text(validate=validate.Length(max=200))


class JobPage(Schema):
    items = fields.List(fields.Nested(JobOut))
    next_cursor = fields.String(allow_none=True)


class TokenOut(Schema):
    id = fields.UUID()
    name = fields.String()
    scopes = fields.List(fields.String())
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class JobTypeOut(Schema):
    name = fields.String()
    task_name = fields.String()
    queue = fields.String()
    description = fields.String()
    scope = fields.String(metadata={"description": "the scope a token needs to submit one"})
    payload_schema = fields.Dict()
    internal = fields.Boolean(metadata={"description": "submitted only by the job that fans it out"})
    languages = fields.List(
        fields.String(), metadata={"description": "ocr types: the language packs installed"}
    )


class DeadLetterQuery(PageQuery):
    queue = Text()
    type = Text()
    error = Text(metadata={"description": "an error type, or text in the error message"})
    since = Timestamp()
    until = Timestamp()
    state = fields.String(load_default="dead", validate=validate.OneOf(["dead", "requeued", "purged"]))


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
    reason = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "why each was dead-lettered: attempts used up, a poison message, ..."},
    )


class Requeue(Schema):
    payload = fields.Dict(keys=fields.String())
    reason = Text(validate=validate.Length(max=500))


class BulkRequeue(Schema):
    queue = Text()
    type = Text()
    error = Text()
    since = Timestamp()
    until = Timestamp()
    all = Flag(
        load_default=False,
        metadata={
            "description": "requeue everything; without it, at least one filter is required (else 422)"
        },
    )
    dry_run = Flag(load_default=False)
    reason = Text(validate=validate.Length(max=500))


class BulkRequeueResult(Schema):
    dry_run = fields.Boolean()
    matched = fields.Integer()
    requeued = fields.Integer()
    skipped = fields.List(fields.Dict())


class Purge(Schema):
    reason = Text(validate=validate.Length(max=500))


class FileOut(Schema):
    id = fields.UUID()
    name = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    content_type = fields.String()
    url = fields.String(
        metadata={"description": "where the bytes are; name the file in a payload as {'file': id}"}
    )
    created_at = fields.DateTime()


class FileUpload(Schema):
    name = Text(validate=validate.Length(min=1, max=255), metadata={"description": "the file's name"})


class FilePage(Schema):
    items = fields.List(fields.Nested(FileOut))
    next_cursor = fields.String(allow_none=True)
