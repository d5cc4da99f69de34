"""Response schemas of the maintenance resources: schedules, backups and restore drills."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.schemas import PageQuery
from jobs.fields import Text


class ScheduleRunOut(Schema):
    id = fields.UUID()
    slot = fields.DateTime()
    trigger = fields.String(metadata={"enum": ["schedule", "catch-up", "manual"]})
    fired_at = fields.DateTime()
    fired_by = fields.String()
    job_id = fields.UUID(allow_none=True)
    skipped = fields.String(allow_none=True, metadata={"description": "why no job was submitted"})
    outcome = fields.String(metadata={"description": "the job's state, or skipped"})


class ScheduleOut(Schema):
    name = fields.String()
    job_type = fields.String()
    description = fields.String()
    cron = fields.String(metadata={"description": "a cron line, @every <n>s|m|h, or off"})
    catch_up = fields.String(metadata={"enum": ["skip", "run-once"]})
    grace_s = fields.Float()
    off = fields.String(allow_none=True, metadata={"description": "why it does not run here"})
    paused = fields.Boolean()
    paused_by = fields.String(allow_none=True)
    next_run = fields.DateTime(allow_none=True)
    last_run = fields.Nested(ScheduleRunOut, allow_none=True)
    last_outcome = fields.String(allow_none=True)
    last_success = fields.DateTime(allow_none=True)
    late = fields.Boolean(metadata={"description": "no successful run for a period plus the grace"})


class ScheduleList(Schema):
    items = fields.List(fields.Nested(ScheduleOut))


class TableCount(Schema):
    rows = fields.Integer()
    estimate = fields.Float()


class BackupOut(Schema):
    id = fields.UUID()
    target = fields.String()
    url = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    started_at = fields.DateTime()
    finished_at = fields.DateTime()
    duration_s = fields.Float()
    server_version = fields.String()
    migration_head = fields.String(allow_none=True)
    tables = fields.Dict(keys=fields.String(), values=fields.Nested(TableCount))
    verified = fields.Boolean()
    verified_at = fields.DateTime(allow_none=True)
    verify_error = fields.String(allow_none=True)
    counts = fields.Boolean(metadata={"description": "only a verified backup counts"})
    job_id = fields.UUID(allow_none=True)
    created_at = fields.DateTime()


class BackupQuery(PageQuery):
    target = Text()


class BackupPage(Schema):
    items = fields.List(fields.Nested(BackupOut))
    next_cursor = fields.String(allow_none=True)


class BackupCreate(Schema):
    target = Text(load_default="platform")


class RestoreRequest(Schema):
    into = Text(required=True, metadata={"example": "postgresql://127.0.0.1:5432/restored"})


class DrillOut(Schema):
    id = fields.UUID()
    backup_id = fields.UUID()
    target = fields.String()
    job_id = fields.UUID(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime()
    ok = fields.Boolean()
    error = fields.String(allow_none=True)
    rto_s = fields.Float(metadata={"description": "measured: download + restore + check"})
    download_s = fields.Float()
    restore_s = fields.Float()
    check_s = fields.Float()
    backup_age_s = fields.Float(metadata={"description": "the recovery point at that moment"})
    tables_checked = fields.Integer()


class DrillPage(Schema):
    items = fields.List(fields.Nested(DrillOut))
    next_cursor = fields.String(allow_none=True)
