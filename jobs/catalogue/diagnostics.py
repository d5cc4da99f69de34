"""Diagnostic job types: what tests, benchmarks and operators use to check a deployment."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from jobs.catalogue.base import JobType


class EchoPayload(Schema):
    class Meta:
        unknown = INCLUDE


class SleepPayload(Schema):
    ms = fields.Integer(required=True, validate=validate.Range(min=0, max=3_600_000))


class FailPayload(Schema):
    times = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1000))
    permanent = fields.Boolean(load_default=False)
    message = fields.String(load_default="failed on purpose", validate=validate.Length(max=500))
    sleep_ms = fields.Integer(load_default=0, validate=validate.Range(min=0, max=600_000))


class LeakPayload(Schema):
    mb = fields.Integer(required=True, validate=validate.Range(min=0, max=1024))
    ms = fields.Integer(load_default=0, validate=validate.Range(min=0, max=600_000))


class CrashPayload(Schema):
    times = fields.Integer(load_default=1_000_000, validate=validate.Range(min=0))


JOB_TYPES = (
    JobType("echo", "conveyor.diagnostics.echo", "default", EchoPayload, "Returns its payload."),
    JobType(
        "sleep",
        "conveyor.diagnostics.sleep",
        "default",
        SleepPayload,
        "Sleeps `ms` milliseconds; stops early when cancelled.",
    ),
    JobType(
        "fail",
        "conveyor.diagnostics.fail",
        "default",
        FailPayload,
        "Sleeps `sleep_ms`, then raises a retriable error `times` times before succeeding; "
        "`permanent` never succeeds.",
    ),
    JobType(
        "leak",
        "conveyor.diagnostics.leak",
        "default",
        LeakPayload,
        "Keeps `mb` MB in its pool process for good, as a leaking handler would, then holds `ms` "
        "milliseconds; returns the process id, so a test sees pool processes replaced.",
    ),
    JobType(
        "crash",
        "conveyor.diagnostics.crash",
        "default",
        CrashPayload,
        "Kills its own worker process (as a segfault or the OOM killer would) on its first "
        "`times` deliveries, then succeeds.",
    ),
)
