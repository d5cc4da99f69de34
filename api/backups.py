"""`/v1/backups` and `/v1/restore-drills` (scope `ops`; a restore needs `admin`): the
manifest, and the jobs that back up, verify, restore and drill. Each request is audited."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Response
from flask.views import MethodView
from sqlalchemy.orm import Session

from api.auth import SECURITY, actor, require
from api.idempotent import Outcome, run_once
from api.ops_schemas import BackupCreate, BackupOut, BackupPage, BackupQuery, DrillPage, RestoreRequest
from api.pagination import cursor_of, page
from api.runtime import runtime
from api.schemas import JobOut, PageQuery
from api.strict_json import Blueprint
from jobs.models import Job
from jobs.upkeep import manifest, operations

blp = Blueprint("backups", __name__, url_prefix="/v1", description="Backups and restore drills.")
JOB_OUT = JobOut()


def _columns(row: Any) -> dict[str, Any]:
    """A row as the response schemas read it (which dump its times and ids)."""
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _backup(row: Any) -> dict[str, Any]:
    return {**_columns(row), "counts": row.verified}


def _job(submit: Callable[[Session, str], Job]) -> Response:
    """Submit the job `submit` makes for this request's actor: 202 and where to watch it."""
    who = actor()

    def work(session: Session) -> Outcome:
        job = submit(session, who)
        return JOB_OUT.dump(job.to_dict()), 202, {"Location": f"/v1/jobs/{job.id}"}

    return run_once(work)


@blp.route("/backups")
class Backups(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(BackupQuery(), location="query")
    @blp.response(200, BackupPage)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The manifest, newest first: verified and unverified backups (only verified ones count)."""
        before = cursor_of(query)
        with runtime().sessions() as session:
            found = manifest.list_backups(session, query["limit"], before, query.get("target"))
        return page([_backup(b) for b in found], query["limit"], at="started_at")

    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(BackupCreate())
    @blp.response(202, JobOut)
    def post(self, body: dict[str, Any]) -> Response:
        """Back up `target` now (default: the platform's database), as a `backup` job."""
        settings = runtime().settings
        return _job(lambda session, who: operations.back_up(session, settings, body["target"], who))


@blp.route("/backups/<uuid:backup_id>")
class BackupById(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(200, BackupOut)
    def get(self, backup_id: uuid.UUID) -> Any:
        """One backup: where it is, its sha256, its exact row counts, and whether it is verified."""
        with runtime().sessions() as session:
            return _backup(manifest.get_backup(session, backup_id))


@blp.route("/backups/<uuid:backup_id>/verify")
class Verify(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.response(202, JobOut)
    def post(self, backup_id: uuid.UUID) -> Response:
        """Read the stored backup back again (sha256 and `pg_restore --list`), as a job."""
        settings = runtime().settings
        return _job(lambda session, who: operations.verify(session, settings, backup_id, who))


@blp.route("/backups/<uuid:backup_id>/restore")
class Restore(MethodView):
    @require("admin")
    @blp.doc(security=SECURITY)
    @blp.arguments(RestoreRequest())
    @blp.response(202, JobOut)
    def post(self, body: dict[str, Any], backup_id: uuid.UUID) -> Response:
        """Restore a verified backup into the database at `into` (no password in the URL),
        never over a target's live database (422); an unverified backup is a 409."""
        settings = runtime().settings
        return _job(lambda session, who: operations.restore(session, settings, backup_id, body["into"], who))


@blp.route("/restore-drills")
class Drills(MethodView):
    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(PageQuery(), location="query")
    @blp.response(200, DrillPage)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Every drill, newest first: its measured RTO, the backup's age, and the first mismatch."""
        before = cursor_of(query)
        with runtime().sessions() as session:
            found = manifest.list_drills(session, query["limit"], before)
        return page([_columns(d) for d in found], query["limit"], at="started_at")

    @require("ops")
    @blp.doc(security=SECURITY)
    @blp.arguments(BackupCreate())
    @blp.response(202, JobOut)
    def post(self, body: dict[str, Any]) -> Response:
        """Drill now: restore the newest verified backup of `target` into a scratch database."""
        settings = runtime().settings
        return _job(lambda session, who: operations.drill(session, settings, body["target"], who))
