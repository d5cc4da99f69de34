"""What the dead-letter tests share: real dead letters from ``fail`` jobs, and ways to read them.

Tests share each backend's database, so each one tells its own dead letters apart by a unique
error message (``marker``).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient

from jobs import tokens
from jobs.models import DeadLetter
from tests.support import Backend, auth, submit, wait_until

LETTER_FIELDS = {
    "id", "job_id", "type", "queue", "task_name", "error_type", "error", "traceback", "attempts",
    "worker", "first_failed_at", "last_failed_at", "requeues", "message", "state", "reason", "audit",
}  # fmt: skip


def marker() -> str:
    return f"broken-{uuid.uuid4().hex}"


def submit_failing(client: FlaskClient, token: str, payload: dict[str, Any], max_attempts: int = 1) -> str:
    return submit(client, token, "fail", payload, max_attempts=max_attempts)


def dead_letter_of(backend: Backend, job_id: str, *, besides: str | None = None) -> str:
    """The id of the job's waiting dead letter (other than ``besides``), once it is indexed."""

    def find() -> str | None:
        with backend.sessions() as session:
            found = session.query(DeadLetter.id).filter(
                DeadLetter.job_id == uuid.UUID(job_id), DeadLetter.state == "dead"
            )
            ids = [str(row.id) for row in found if str(row.id) != besides]
        return ids[0] if ids else None

    return wait_until(find, 60, f"a dead letter for job {job_id}")


def kill(backend: Backend, client: FlaskClient, writer: str, message: str) -> tuple[str, str]:
    """Submit a job that fails permanently; returns its job id and dead letter id."""
    job_id = submit_failing(client, writer, {"permanent": True, "message": message})
    return job_id, dead_letter_of(backend, job_id)


def exhaust(
    backend: Backend, client: FlaskClient, writer: str, message: str, times: int = 1
) -> tuple[str, str]:
    """Submit a job that fails ``times`` and may run once: it dies retries-exhausted."""
    job_id = submit_failing(client, writer, {"times": times, "message": message})
    return job_id, dead_letter_of(backend, job_id)


def letter(client: FlaskClient, token: str, letter_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/dead-letters/{letter_id}", headers=auth(token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def listed(client: FlaskClient, token: str, **query: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/dead-letters", query_string=query, headers=auth(token))
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def ids_listed(client: FlaskClient, token: str, **query: Any) -> set[str]:
    return {item["id"] for item in listed(client, token, **query)}


def job(client: FlaskClient, token: str, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}", headers=auth(token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def token_actor(backend: Backend, token: str) -> str:
    with backend.sessions() as session:
        found = tokens.authenticate(session, token)
    assert found is not None
    return f"token:{found.name}:{found.id}"
