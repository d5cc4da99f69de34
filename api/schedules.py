"""`/v1/schedules`: what beat runs, how each schedule's last run ended, and whether it is late
(scope `ops`); operators run one now, or pause and resume it."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from sqlalchemy.orm import Session

from api.auth import SECURITY, actor, require
from api.idempotent import Outcome, run_once
from api.ops_schemas import ScheduleList, ScheduleOut, ScheduleRunOut
from api.runtime import runtime
from api.strict_json import Blueprint
from jobs.scheduler import operations

blp = Blueprint("schedules", __name__, url_prefix="/v1/schedules", description="Scheduled maintenance.")
NAME = "<string(maxlength=64):name>"


@blp.route("")
class Schedules(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, ScheduleList)
    def get(self) -> dict[str, Any]:
        """Every schedule: its cron, next run, last run and outcome, last success, late flag."""
        with runtime().sessions.begin() as session:
            return {"items": operations.overview(session, runtime().settings)}


@blp.route(f"/{NAME}")
class ScheduleByName(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, ScheduleOut)
    def get(self, name: str) -> dict[str, Any]:
        """One schedule."""
        with runtime().sessions.begin() as session:
            return operations.one(session, runtime().settings, name)


@blp.route(f"/{NAME}/run")
class RunNow(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(202, ScheduleRunOut)
    def post(self, name: str) -> Response:
        """Fire the schedule now: its job is submitted at once. 409 while its previous run has
        not finished, or when the schedule is off here."""
        who = actor()

        def fire(session: Session) -> Outcome:
            run = operations.run(session, runtime().settings, name, who)
            return ScheduleRunOut().dump(run), 202, {"Location": f"/v1/jobs/{run['job_id']}"}

        return run_once(fire)


@blp.route(f"/{NAME}/pause")
class Pause(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, ScheduleOut)
    def post(self, name: str) -> dict[str, Any]:
        """Pause the schedule until resumed: beat fires none of its slots meanwhile."""
        return _pause(name, paused=True)


@blp.route(f"/{NAME}/resume")
class Resume(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, ScheduleOut)
    def post(self, name: str) -> dict[str, Any]:
        """Resume the schedule from its next slot; slots that passed while paused are not run."""
        return _pause(name, paused=False)


def _pause(name: str, *, paused: bool) -> dict[str, Any]:
    with runtime().sessions.begin() as session:
        return operations.pause(session, runtime().settings, name, actor(), paused=paused)
