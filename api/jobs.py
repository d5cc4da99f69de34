"""``/v1/jobs``: submit, read, list, cancel and retry jobs."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_token, require
from api.errors import abort
from api.runtime import runtime
from api.schemas import JobCreate, JobOut, JobPage, JobQuery
from jobs import idempotency, service
from jobs.models import Job
from jobs.outbox import publish_due

log = logging.getLogger(__name__)

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Submit and follow jobs.")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "X-Idempotency-Key")


def parse_job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        abort(404, f"No job with id {text!r}: job ids are UUIDs.")


@blp.route("")
class Jobs(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(JobQuery, location="query")
    @blp.response(200, JobPage)
    @require("jobs:read")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List jobs, newest first, one page at a time."""
        before = decode_cursor(query["cursor"]) if "cursor" in query else None
        with runtime().sessions() as session:
            found = service.list_jobs(
                session,
                query["limit"],
                type=query.get("type"),
                state=query.get("state"),
                before=before,
            )
        full_page = len(found) == query["limit"]
        return {
            "items": [job.to_dict() for job in found],
            "next_cursor": encode_cursor(found[-1]) if found and full_page else None,
        }

    @blp.doc(security=SECURITY)
    @blp.arguments(JobCreate)
    @blp.response(202, JobOut)
    @require("jobs:write")
    def post(self, body: dict[str, Any]) -> Any:
        """Submit a job. Send ``Idempotency-Key`` to make retries of this request safe."""
        key = next((request.headers[h] for h in IDEMPOTENCY_HEADERS if h in request.headers), None)
        if key is None:
            job_body, location = _submit(body, None)
            return _json(job_body, 202, {"Location": location})
        if not 1 <= len(key) <= 255:
            abort(400, "Idempotency-Key must be 1 to 255 characters.")
        return _submit_once(body, key)


def _submit_once(body: dict[str, Any], key: str) -> Any:
    rt, token_id = runtime(), current_token().id
    fingerprint = idempotency.request_hash("POST", request.path, request.get_json())
    ttl = timedelta(hours=rt.settings.idempotency_ttl_hours)
    try:
        with rt.sessions.begin() as session:
            stored = idempotency.begin(session, token_id, key, fingerprint, ttl)
    except idempotency.KeyInFlightError as exc:
        abort(409, str(exc))
    except idempotency.KeyReusedError as exc:
        abort(422, str(exc))
    if stored is not None:
        headers = {"Idempotent-Replayed": "true", "Location": stored.location or ""}
        return _json(stored.body, stored.status, headers)
    try:
        job_body, location = _submit(body, (token_id, key))
    except BaseException:
        with rt.sessions.begin() as session:
            idempotency.release(session, token_id, key)
        raise
    return _json(job_body, 202, {"Location": location})


def _json(body: Any, status: int, headers: dict[str, str]) -> Response:
    """A body already dumped by JobOut (as stored for replays), sent as is."""
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def _submit(body: dict[str, Any], key: tuple[uuid.UUID, str] | None) -> tuple[Any, str]:
    """Write the job, its outbox message and the idempotency record in one transaction."""
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            job = service.submit(session, rt.settings, service.Submission(**body))
            location = f"/v1/jobs/{job.id}"
            job_body = JobOut().dump(job.to_dict())
            if key is not None:
                stored = idempotency.StoredResponse(202, job_body, location)
                idempotency.complete(session, *key, stored)
    except service.InvalidJobError as exc:
        abort(422, "The job is not valid.", errors=exc.errors)
    publish_now(job.id)
    return job_body, location


def publish_now(job_id: uuid.UUID) -> None:
    """The fast path; if the broker is down the relay publishes the job later."""
    rt = runtime()
    try:
        publish_due(rt.sessions, rt.publisher, job_ids=[job_id])
    except Exception as exc:
        log.warning("Job %s is saved but not published yet (%s); the relay will.", job_id, exc)


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), str(job.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        return datetime.fromisoformat(created_at), uuid.UUID(job_id)
    except (ValueError, TypeError, binascii.Error):
        abort(400, "The cursor is not valid; pass back next_cursor from a previous page.")


@blp.route("/<job_id>")
class JobById(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, JobOut)
    @require("jobs:read")
    def get(self, job_id: str) -> dict[str, Any]:
        """Read one job."""
        return _with_job(job_id, lambda session, jid: service.get(session, jid))


@blp.route("/<job_id>/cancel")
class CancelJob(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, JobOut)
    @require("jobs:write")
    def post(self, job_id: str) -> dict[str, Any]:
        """Cancel a waiting job now, or ask a running one to stop (409 once it has finished)."""
        return _with_job(job_id, service.cancel, write=True)


@blp.route("/<job_id>/retry")
class RetryJob(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(202, JobOut)
    @require("jobs:write")
    def post(self, job_id: str) -> dict[str, Any]:
        """Run a failed, dead or cancelled job again from its first attempt."""
        job = _with_job(job_id, service.retry, write=True)
        publish_now(job["id"])
        return job


def _with_job(job_id: str, operation: Any, *, write: bool = False) -> dict[str, Any]:
    jid = parse_job_id(job_id)
    rt = runtime()
    try:
        with rt.sessions.begin() if write else rt.sessions() as session:
            return operation(session, jid).to_dict()
    except service.JobNotFoundError as exc:
        abort(404, str(exc))
    except service.JobConflictError as exc:
        abort(409, str(exc))
