"""`/v1/dead-letters`: what failed for good, and what operators do about it (scope `ops`)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from sqlalchemy.orm import Session

from api.auth import SECURITY, actor, check_requeue_scope, require
from api.errors import abort
from api.idempotent import Outcome, run_once
from api.limits import limited
from api.pagination import cursor_of, page
from api.runtime import runtime
from api.schemas import (
    BulkRequeue,
    BulkRequeueResult,
    DeadLetterOut,
    DeadLetterPage,
    DeadLetterQuery,
    DeadLetterStats,
    Purge,
    Requeue,
)
from api.strict_json import Blueprint
from jobs import dead_letters
from jobs.models import DeadLetter

blp = Blueprint(
    "dead-letters", __name__, url_prefix="/v1/dead-letters", description="Inspect and requeue dead letters."
)


def filter_from(values: dict[str, Any], state: str = "dead") -> dead_letters.Filter:
    return dead_letters.Filter(
        queue=values.get("queue"),
        type=values.get("type"),
        error=values.get("error"),
        since=values.get("since"),
        until=values.get("until"),
        state=state,
    )


@blp.route("")
class DeadLetters(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(DeadLetterQuery(), location="query")
    @blp.response(200, DeadLetterPage)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List dead letters, most recent failure first."""
        flt = filter_from(query, state=query["state"])
        before = cursor_of(query)
        with runtime().sessions() as session:
            found = dead_letters.list_dead_letters(session, flt, query["limit"], before)
            items = dead_letters.views(session, found)
        return page(items, query["limit"], at="last_failed_at")


@blp.route("/stats")
class Stats(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, DeadLetterStats)
    def get(self) -> dict[str, Any]:
        """Dead letters waiting for an operator, counted by queue, type and error."""
        with runtime().sessions() as session:
            return {
                "total": dead_letters.count(session, dead_letters.Filter()),
                **dead_letters.stats(session),
            }


@blp.route("/requeue")
class BulkRequeueView(MethodView):
    @require("ops")
    @limited("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(BulkRequeue())
    @blp.response(200, BulkRequeueResult)
    def post(self, body: dict[str, Any]) -> Response:
        """Requeue every dead letter matching a filter; `dry_run` only counts them."""
        flt = filter_from(body)
        if flt == dead_letters.Filter() and not body["all"]:
            abort(
                422, "Give a filter (queue, type, error, since, until), or all: true to requeue everything."
            )
        who = actor()

        def requeue_matching(session: Session) -> Outcome:
            for job_type in dead_letters.types_matching(session, flt):
                check_requeue_scope(job_type)
            matched = dead_letters.count(session, flt)
            if body["dry_run"]:
                return {"dry_run": True, "matched": matched, "requeued": 0, "skipped": []}, 200, {}
            done, skipped = dead_letters.requeue_matching(session, flt, actor=who, reason=body.get("reason"))
            result = {"dry_run": False, "matched": matched, "requeued": len(done), "skipped": skipped}
            return BulkRequeueResult().dump(result), 200, {}

        return run_once(requeue_matching)


@blp.route("/<uuid:dead_letter_id>")
class DeadLetterById(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, DeadLetterOut)
    def get(self, dead_letter_id: uuid.UUID) -> dict[str, Any]:
        """One dead letter, with its original message and its audit trail."""
        with runtime().sessions() as session:
            letter = dead_letters.get(session, dead_letter_id)
            return dead_letters.view(session, letter)

    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(Purge(), location="query")
    @blp.response(200, DeadLetterOut)
    def delete(self, query: dict[str, Any], dead_letter_id: uuid.UUID) -> dict[str, Any]:
        """Purge a dead letter: its message is dropped; the record and audit trail stay."""
        return _change(
            dead_letter_id, lambda s, i: dead_letters.purge(s, i, actor=actor(), reason=query.get("reason"))
        )


@blp.route("/<uuid:dead_letter_id>/requeue")
class RequeueOne(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(Requeue())
    @blp.response(200, DeadLetterOut)
    def post(self, body: dict[str, Any], dead_letter_id: uuid.UUID) -> dict[str, Any]:
        """Requeue one dead letter, optionally with a corrected payload (checked by its type's schema)."""

        def requeue(session: Session, letter_id: uuid.UUID) -> DeadLetter:
            check_requeue_scope(dead_letters.get(session, letter_id).type)
            return dead_letters.requeue(
                session, letter_id, actor=actor(), settings=runtime().settings, **body
            )

        return _change(dead_letter_id, requeue)


def _change(dead_letter_id: uuid.UUID, operation: Any) -> dict[str, Any]:
    with runtime().sessions.begin() as session:
        return dead_letters.view(session, operation(session, dead_letter_id))
