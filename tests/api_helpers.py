"""What the HTTP contract tests share: job bodies, posting them, and the one error shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from jobs.models import Job
from tests.support import Backend, auth, submit

FAR_FUTURE = (datetime.now(UTC) + timedelta(days=365)).isoformat()


def echo_job(**extra: Any) -> dict[str, Any]:
    """An echo submission findable by its own correlation id."""
    return {"type": "echo", "payload": {"n": 1}, "correlation_id": uuid.uuid4().hex, **extra}


def post_job(client: FlaskClient, token: str, body: Any, **headers: str) -> TestResponse:
    return client.post("/v1/jobs", json=body, headers=auth(token, **headers))


def submitted(client: FlaskClient, token: str, body: dict[str, Any]) -> str:
    extra = {k: v for k, v in body.items() if k not in ("type", "payload")}
    return submit(client, token, body["type"], body["payload"], **extra)


def jobs_with_correlation(backend: Backend, correlation_id: str) -> int:
    with backend.sessions() as session:
        statement = select(func.count()).select_from(Job).where(Job.correlation_id == correlation_id)
        return int(session.scalar(statement) or 0)


def assert_error(response: TestResponse, status: int) -> dict[str, Any]:
    """The one error shape: JSON with code, status and message, never an HTML page."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body["code"] == status
    assert body["status"] and body["message"]
    assert "<html" not in response.get_data(as_text=True).lower()
    return body


def new_key() -> str:
    return f"key-{uuid.uuid4()}"
