"""`/v1/jobs`: submit, read, list, cancel and retry jobs."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from api.auth import SECURITY, actor, check_type_scope, require
from api.correlation import request_id
from api.idempotent import Outcome, run_once
from api.limits import limited
from api.pagination import cursor_of, page
from api.runtime import runtime
from api.schemas import JobOut, JobPage, JobQuery
from api.strict_json import Blueprint
from jobs import dead_letters, service
from jobs.models import Job, view_of
from jobs.service.schema import JobCreate

JOB_OUT = JobOut()

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Submit and follow jobs.")


@blp.route("")
class Jobs(MethodView):
    @require("jobs:read")
    @blp.doc(security=SECURITY)
    @blp.arguments(JobQuery(), location="query")
    @blp.response(200, JobPage)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List jobs, newest first, one page at a time."""
        before = cursor_of(query)
        with runtime().sessions() as session:
            found = service.list_jobs(
                session,
                query["limit"],
                type=query.get("type"),
                state=query.get("state"),
                correlation_id=query.get("correlation_id"),
                before=before,
            )
        return page([job.to_dict() for job in found], query["limit"], at="created_at")

    @require("jobs:write")
    @limited("jobs:write")
    @blp.doc(security=SECURITY)
    @blp.arguments(JobCreate())
    @blp.response(202, JobOut)
    def post(self, body: dict[str, Any]) -> Response:
        """Submit a job. Send `Idempotency-Key` to make retries of this request safe. The
        upkeep types need the `ops` scope, `restore-backup` `admin`."""
        check_type_scope(body["type"])
        body["correlation_id"] = body.get("correlation_id") or request_id()

        def submit(db: Session | Connection) -> Outcome:
            row = service.submit_row(db, runtime().settings, service.Submission(**body))
            return JOB_OUT.dump(view_of(row)), 202, {"Location": f"/v1/jobs/{row['id']}"}

        return run_once(submit, single_statement=True)


@blp.route("/<uuid:job_id>")
class JobById(MethodView):
    @require("jobs:read")
    @blp.doc(security=SECURITY)
    @blp.response(200, JobOut)
    def get(self, job_id: uuid.UUID) -> dict[str, Any]:
        """Read one job."""
        return _with_job(job_id, lambda session, jid: service.get(session, jid)).to_dict()


@blp.route("/<uuid:job_id>/cancel")
class CancelJob(MethodView):
    @require("jobs:write")
    @blp.doc(security=SECURITY)
    @blp.response(200, JobOut)
    def post(self, job_id: uuid.UUID) -> dict[str, Any]:
        """Cancel a waiting job now, or ask a running one to stop (409 once it has finished)."""
        who = actor()
        return _with_job(job_id, lambda s, jid: service.cancel(s, jid, actor=who), write=True).to_dict()


@blp.route("/<uuid:job_id>/retry")
class RetryJob(MethodView):
    @require("jobs:write")
    @blp.doc(security=SECURITY)
    @blp.response(202, JobOut)
    def post(self, job_id: uuid.UUID) -> dict[str, Any]:
        """Run a dead or cancelled job again from its first attempt."""
        who = actor()

        def retry(session: Session, jid: uuid.UUID) -> Job:
            check_type_scope(service.get(session, jid).type)
            return dead_letters.retry_job(session, jid, actor=who)

        return _with_job(job_id, retry, write=True).to_dict()


def _with_job(job_id: uuid.UUID, operation: Any, *, write: bool = False) -> Job:
    rt = runtime()
    with rt.sessions.begin() if write else rt.sessions() as session:
        job: Job = operation(session, job_id)
        return job
