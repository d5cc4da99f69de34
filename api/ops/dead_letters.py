"""Dead-letter pages: counts, a filtered list, one letter, and requeue and purge."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import request
from werkzeug import Response

from api.auth import actor, check_requeue_scope
from api.dead_letters import filter_from
from api.ops.console import Refused, bp, done, form, operator, page, viewer
from api.pagination import cursor_of, encode_cursor
from api.runtime import runtime
from api.schemas import BulkRequeue, DeadLetterQuery, Purge, Requeue
from jobs import dead_letters
from jobs.models import Job
from jobs.strict_json import strict_loads

PAGE_SIZE = 50
FILTERS = ("queue", "type", "error", "since", "until", "state")
BULK_FIELDS = ("queue", "type", "error", "since", "until", "reason")


@bp.get("/")
@bp.get("/dead-letters")
@viewer
def dead_letters_page() -> tuple[str, int]:
    query = form(DeadLetterQuery(), request.args)
    flt = filter_from(query, state=query["state"])
    with runtime().sessions() as session:
        found = dead_letters.list_dead_letters(session, flt, PAGE_SIZE, cursor_of(query))
        counts = dead_letters.stats(session)
        matched = dead_letters.count(session, flt)
    more = encode_cursor(found[-1].last_failed_at, found[-1].id) if len(found) == PAGE_SIZE else None
    shown = {key: request.args.get(key, "") for key in FILTERS}
    return page(
        "dead_letters.html", letters=found, counts_by=counts, matched=matched, filters=shown, more=more
    )


@bp.get("/dead-letters/<uuid:letter_id>")
@viewer
def dead_letter_page(letter_id: uuid.UUID) -> tuple[str, int]:
    with runtime().sessions() as session:
        letter = dead_letters.view(session, dead_letters.get(session, letter_id))
        job = session.get(Job, letter["job_id"]) if letter["job_id"] else None
        payload = _shown(job.payload) if job is not None else None
    return page("dead_letter.html", letter=letter, payload=payload)


@bp.post("/dead-letters/<uuid:letter_id>/requeue")
@operator
def requeue(letter_id: uuid.UUID) -> Any:
    body = form(Requeue(), {"reason": request.form.get("reason", "")})
    corrected = _edited_payload()
    if corrected is not None:
        body["payload"] = corrected
    with runtime().sessions.begin() as session:
        check_requeue_scope(dead_letters.get(session, letter_id).type)
        letter = dead_letters.requeue(session, letter_id, actor=actor(), settings=runtime().settings, **body)
    said = " with the edited payload" if "payload" in body else ""
    if letter.job_id is None:
        return done(
            "Requeued: its original message is sent again.", "ops.dead_letter_page", letter_id=letter_id
        )
    return done(f"Requeued{said}: the job runs again.", "ops.job_page", job_id=letter.job_id)


@bp.post("/dead-letters/<uuid:letter_id>/purge")
@operator
def purge(letter_id: uuid.UUID) -> Response:
    body = form(Purge(), {"reason": request.form.get("reason", "")})
    if not body.get("reason"):
        raise Refused(422, "Say why you purge it: a purge drops the message for good.")
    with runtime().sessions.begin() as session:
        dead_letters.purge(session, letter_id, actor=actor(), reason=body["reason"])
    return done("Purged; its record and audit trail stay.", "ops.dead_letter_page", letter_id=letter_id)


@bp.post("/dead-letters/requeue")
@operator
def requeue_matching() -> tuple[str, int] | Response:
    body = form(BulkRequeue(), {key: request.form.get(key, "") for key in BULK_FIELDS})
    flt = filter_from(body)
    if flt == dead_letters.Filter() and request.form.get("all") != "true":
        raise Refused(422, "Give a filter, or requeue everything from the unfiltered list.")
    if not body.get("reason"):
        raise Refused(422, "Say why you requeue them: the reason goes to each letter's audit trail.")
    with runtime().sessions.begin() as session:
        for job_type in dead_letters.types_matching(session, flt):
            check_requeue_scope(job_type)
        matched = dead_letters.count(session, flt)
        if request.form.get("confirm") != str(matched):
            return page("confirm_requeue.html", matched=matched, body=body, fields=request.form)
        requeued, skipped = dead_letters.requeue_matching(session, flt, actor=actor(), reason=body["reason"])
    return done(f"Requeued {len(requeued)} of {matched}; {len(skipped)} skipped.", "ops.dead_letters_page")


def _shown(payload: dict[str, Any]) -> str:
    """As an operator edits it: indented, and readable beyond ASCII (the page escapes it)."""
    return json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)


def _edited_payload() -> dict[str, Any] | None:
    """The payload as the operator changed it, or None when the text still means what it was."""
    text = request.form.get("payload", "").strip()
    if not text:
        return None
    edited = _payload(text)
    return None if edited == _payload(request.form.get("original") or "{}") else edited


def _payload(text: str) -> dict[str, Any]:
    try:
        value = strict_loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(422, f"The edited payload is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Refused(422, "The edited payload must be a JSON object.")
    return value
