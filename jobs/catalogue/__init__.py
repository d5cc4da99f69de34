"""The catalogue of job types: the one map from a type to its task, queue and payload schema.

It feeds the API's validation, ``GET /v1/job-types`` and the workers' routing. Payload schemas
live in one module per family beside this one and import nothing heavy, so the API can load the
catalogue without the workers' libraries. Handlers live in ``tasks/``; the worker binds each type
here to its handler there, and a test checks both agree.
"""

from __future__ import annotations

import functools
from typing import Any

from marshmallow import Schema, ValidationError

from jobs.catalogue import diagnostics, imports, maintenance, ocr, storage
from jobs.catalogue.base import JobType
from jobs.errors import InvalidJobError
from jobs.settings import Settings

__all__ = [
    "JOB_TYPES",
    "TYPE_OF_TASK",
    "JobType",
    "describe",
    "installed_now",
    "payload_json_schema",
    "validate_payload",
]

JOB_TYPES: dict[str, JobType] = {
    jt.name: jt
    for jt in (
        *diagnostics.JOB_TYPES,
        *storage.JOB_TYPES,
        *maintenance.JOB_TYPES,
        *ocr.JOB_TYPES,
        *imports.JOB_TYPES,
    )
}
TYPE_OF_TASK = {jt.task_name: jt.name for jt in JOB_TYPES.values()}


def validate_payload(job_type: str, payload: Any, settings: Settings | None = None) -> dict[str, Any]:
    """The payload as the type's schema loads it, checked against ``settings`` when given;
    raises InvalidJobError naming the fields."""
    if job_type not in JOB_TYPES:
        raise InvalidJobError({"type": [f"Unknown job type {job_type!r}."]})
    if not isinstance(payload, dict):
        raise InvalidJobError({"payload": ["Must be a JSON object."]})
    try:
        loaded: dict[str, Any] = _payload_schema(job_type).load(payload)
        check = JOB_TYPES[job_type].check
        if settings is not None and check is not None:
            check(loaded, settings)
    except ValidationError as exc:
        raise InvalidJobError({"payload": exc.messages}) from None
    return loaded


@functools.cache
def _payload_schema(job_type: str) -> Schema:
    return JOB_TYPES[job_type].schema()


def payload_json_schema(job_type: JobType) -> dict[str, Any]:
    """The type's payload schema as JSON Schema, as the OpenAPI document shows it."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    plugin = MarshmallowPlugin()
    APISpec("conveyor", "v1", "3.0.3", plugins=[plugin])
    assert plugin.converter is not None
    schema: dict[str, Any] = plugin.converter.schema2jsonschema(job_type.schema)
    return schema


def describe(job_type: JobType) -> dict[str, Any]:
    """A job type as ``GET /v1/job-types`` and ``conveyor job-types`` show it."""
    return {
        "name": job_type.name,
        "task_name": job_type.task_name,
        "queue": job_type.queue,
        "description": job_type.description,
        "scope": job_type.scope,
        "internal": job_type.internal,
        "payload_schema": payload_json_schema(job_type),
    }


def installed_now(job_type: JobType) -> dict[str, Any]:
    """What this deployment has for the type at the moment, beside ``describe``'s fixed part:
    the OCR types' language packs (a pack added shows within a minute)."""
    return {"languages": sorted(ocr.installed_languages() or ())} if job_type.queue == "ocr" else {}
