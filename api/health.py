"""Liveness and readiness probes (public)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import text

from api.errors import error_response
from api.runtime import runtime
from api.strict_json import Blueprint
from jobs.broker import config as broker
from jobs.migrate import pending_migrations

blp = Blueprint("health", __name__, url_prefix="/health", description="Probes.")


@blp.route("/live")
class Live(MethodView):
    def get(self) -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    def get(self) -> Any:
        """Ready when the database answers, its schema is at head, and the broker answers."""
        reasons = readiness_problems()
        if reasons:
            response = error_response(503, "Not ready: " + "; ".join(reasons), reasons)
            return response
        return {"status": "ok"}


def readiness_problems() -> list[str]:
    rt = runtime()
    reasons = []
    try:
        with rt.sessions() as session:
            session.execute(text("SELECT 1"))
        pending = pending_migrations(rt.sessions.kw["bind"])
        if pending:
            reasons.append(f"database migrations are not at head ({len(pending)} pending)")
    except Exception as exc:
        reasons.append(f"database unreachable: {type(exc).__name__}")
    try:
        broker.ping(rt.settings)
    except Exception as exc:
        reasons.append(f"broker unreachable: {type(exc).__name__}")
    return reasons
