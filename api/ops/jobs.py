"""Job pages: search by id, type, state or correlation id; one job with its history, progress
and child jobs; cancel and retry."""

from __future__ import annotations

import uuid
from typing import Any

from flask import redirect, request, url_for
from werkzeug import Response

from api.auth import actor, check_scope, check_type_scope, current_token
from api.ops.console import Refused, bp, done, form, operator, page, viewer
from api.pagination import cursor_of, encode_cursor
from api.runtime import runtime
from api.schemas import JobQuery
from jobs import dead_letters, service, tokens
from jobs.models import FINISHED_STATES, JobState

PAGE_SIZE = 50
CHILDREN_SHOWN = 200
FILTERS = ("type", "state", "correlation_id")


@bp.get("/jobs")
@viewer
def jobs_page() -> Any:
    wanted = request.args.get("id", "").strip()
    if wanted:
        return redirect(url_for("ops.job_page", job_id=_job_id(wanted)))
    query = form(JobQuery(), request.args)
    with runtime().sessions() as session:
        found = service.list_jobs(
            session,
            PAGE_SIZE,
            **{key: query.get(key) for key in FILTERS},
            before=cursor_of(query),
        )
    more = encode_cursor(found[-1].created_at, found[-1].id) if len(found) == PAGE_SIZE else None
    shown = {key: request.args.get(key, "") for key in FILTERS}
    return page("jobs.html", jobs=found, filters=shown, states=list(JobState), more=more)


@bp.get("/jobs/<uuid:job_id>")
@viewer
def job_page(job_id: uuid.UUID) -> tuple[str, int]:
    with runtime().sessions() as session:
        job = service.get(session, job_id)
        children = service.children_of(session, job_id, limit=CHILDREN_SHOWN + 1)
        trail = dead_letters.views(session, dead_letters.letters_of(session, job_id))
    return page(
        "job.html",
        job=job,
        children=children[:CHILDREN_SHOWN],
        more_children=len(children) > CHILDREN_SHOWN,
        letters=trail,
        can_write=tokens.has_scope(current_token(), "jobs:write"),
        can_cancel=job.state not in FINISHED_STATES,
        can_retry=job.state in service.RETRYABLE_BY_HAND,
    )


@bp.post("/jobs/<uuid:job_id>/cancel")
@operator
def cancel(job_id: uuid.UUID) -> Response:
    """Needs `jobs:write` too, as `POST /v1/jobs/{id}/cancel` does."""
    check_scope("jobs:write")
    with runtime().sessions.begin() as session:
        job = service.cancel(session, job_id, actor=actor())
    said = "Cancelled." if job.state == JobState.CANCELLED else "Asked to stop; it ends at its next check."
    return done(said, "ops.job_page", job_id=job_id)


@bp.post("/jobs/<uuid:job_id>/retry")
@operator
def retry(job_id: uuid.UUID) -> Response:
    """Needs `jobs:write` and the type's scope, as `POST /v1/jobs/{id}/retry` does."""
    check_scope("jobs:write")
    with runtime().sessions.begin() as session:
        check_type_scope(service.get(session, job_id).type)
        dead_letters.retry_job(session, job_id, actor=actor())
    return done("Retried from its first attempt.", "ops.job_page", job_id=job_id)


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise Refused(422, f"{text[:80]!r} is not a job id (a UUID).") from exc
