"""Schedule and backup pages: each schedule with its next run, last outcome and late flag (run
now, pause, resume); the backups with their verified state, size and age, and the drills' RTO."""

from __future__ import annotations

from werkzeug import Response

from api.auth import actor
from api.ops.console import bp, done, operator, page, viewer
from api.runtime import runtime
from jobs.models import utcnow
from jobs.scheduler import operations
from jobs.upkeep import manifest

SCHEDULE = "<string(maxlength=64):name>"
LISTED = 50


@bp.get("/schedules")
@viewer
def schedules_page() -> tuple[str, int]:
    with runtime().sessions.begin() as session:
        entries = operations.overview(session, runtime().settings)
    return page("schedules.html", schedules=entries)


@bp.post(f"/schedules/{SCHEDULE}/run")
@operator
def run_schedule(name: str) -> Response:
    with runtime().sessions.begin() as session:
        fired = operations.run(session, runtime().settings, name, actor())
    return done(f"{name} fired now.", "ops.job_page", job_id=fired["job_id"])


@bp.post(f"/schedules/{SCHEDULE}/pause")
@operator
def pause_schedule(name: str) -> Response:
    return _pause(name, paused=True)


@bp.post(f"/schedules/{SCHEDULE}/resume")
@operator
def resume_schedule(name: str) -> Response:
    return _pause(name, paused=False)


def _pause(name: str, *, paused: bool) -> Response:
    with runtime().sessions.begin() as session:
        operations.pause(session, runtime().settings, name, actor(), paused=paused)
    return done(f"{name} {'paused' if paused else 'resumed'}.", "ops.schedules_page")


@bp.get("/backups")
@viewer
def backups_page() -> tuple[str, int]:
    with runtime().sessions() as session:
        backups = manifest.list_backups(session, LISTED)
        drills = manifest.list_drills(session, LISTED)
    return page("backups.html", backups=backups, drills=drills, now=utcnow())
