"""The HTTP contract on each backend: idempotency, auth, errors, listing, job types, readiness."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from api import create_app
from jobs import idempotency, tokens
from jobs.catalogue import JOB_TYPES
from jobs.models import Job
from jobs.settings import load_settings
from tests.services import end_connections, fresh_postgres_database, require_services
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


# Idempotency


def test_replay_with_the_same_key_returns_the_first_response_and_creates_no_job(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    body, key = echo_job(), new_key()

    first = post_job(client, writer, body, **{"Idempotency-Key": key})
    replay = post_job(client, writer, body, **{"Idempotency-Key": key})

    assert first.status_code == replay.status_code == 202
    assert replay.get_json() == first.get_json()
    assert replay.headers["Location"] == first.headers["Location"] == f"/v1/jobs/{first.get_json()['id']}"
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert jobs_with_correlation(backend, body["correlation_id"]) == 1


def test_x_idempotency_key_header_is_accepted_too(backend: Backend, client: FlaskClient, writer: str) -> None:
    body, key = echo_job(), new_key()

    first = post_job(client, writer, body, **{"X-Idempotency-Key": key})
    replay = post_job(client, writer, body, **{"X-Idempotency-Key": key})

    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == first.get_json()["id"]
    assert jobs_with_correlation(backend, body["correlation_id"]) == 1


def test_same_key_with_another_body_is_rejected(backend: Backend, client: FlaskClient, writer: str) -> None:
    first, second, key = echo_job(), echo_job(), new_key()
    assert post_job(client, writer, first, **{"Idempotency-Key": key}).status_code == 202

    response = post_job(client, writer, second, **{"Idempotency-Key": key})

    assert_error(response, 422)
    assert jobs_with_correlation(backend, second["correlation_id"]) == 0


def test_keys_are_scoped_to_the_token(backend: Backend, client: FlaskClient, writer: str) -> None:
    other = backend.token("jobs:write", "jobs:read")
    body, key = echo_job(), new_key()

    mine = post_job(client, writer, body, **{"Idempotency-Key": key})
    theirs = post_job(client, other, body, **{"Idempotency-Key": key})

    assert mine.status_code == theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["id"] != mine.get_json()["id"]
    assert jobs_with_correlation(backend, body["correlation_id"]) == 2


def test_same_key_while_the_first_request_is_in_flight_is_a_conflict(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    body, key = echo_job(), new_key()
    fingerprint = idempotency.request_hash("POST", "/v1/jobs", body)
    with backend.sessions.begin() as session:
        token = tokens.authenticate(session, writer)
        assert token is not None
        assert idempotency.begin(session, token.id, key, fingerprint, timedelta(hours=1)) is None

    response = post_job(client, writer, body, **{"Idempotency-Key": key})

    assert "in flight" in assert_error(response, 409)["message"]
    assert jobs_with_correlation(backend, body["correlation_id"]) == 0


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app on a real threaded HTTP server, for requests that must truly overlap."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_fifty_concurrent_requests_with_one_key_create_exactly_one_job(
    backend: Backend, served: str, writer: str
) -> None:
    body, key, clients = echo_job(), new_key(), 50
    barrier = threading.Barrier(clients)

    def post(_: int) -> requests.Response:
        barrier.wait(timeout=30)
        headers = auth(writer, **{"Idempotency-Key": key})
        return requests.post(f"{served}/v1/jobs", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(clients) as pool:
        responses = list(pool.map(post, range(clients)))

    assert jobs_with_correlation(backend, body["correlation_id"]) == 1
    assert {r.status_code for r in responses} <= {202, 409}, [r.text for r in responses]
    accepted_ids = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(accepted_ids) == 1


# Authentication and scopes


def test_a_request_without_a_token_is_unauthorized(client: FlaskClient) -> None:
    response = client.get("/v1/jobs")

    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_request_without_a_token_is_unauthorized_before_its_body_is_checked(client: FlaskClient) -> None:
    response = client.post("/v1/jobs", json={"payload": 3})

    assert_error(response, 401)


def test_a_request_with_a_bad_token_is_unauthorized(client: FlaskClient) -> None:
    response = client.get("/v1/jobs", headers=auth("cvr_not-a-real-token"))

    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_read_only_token_may_not_submit(backend: Backend, client: FlaskClient) -> None:
    reader = backend.token("jobs:read")

    response = post_job(client, reader, echo_job())

    assert "jobs:write" in assert_error(response, 403)["message"]
    assert client.get("/v1/jobs?limit=1", headers=auth(reader)).status_code == 200


def test_an_admin_token_may_do_everything(backend: Backend, client: FlaskClient) -> None:
    admin = backend.token("admin")
    job_id = submitted(client, admin, echo_job(run_at=FAR_FUTURE))

    assert client.get(f"/v1/jobs/{job_id}", headers=auth(admin)).status_code == 200
    assert client.get("/v1/jobs?limit=1", headers=auth(admin)).status_code == 200
    assert client.get("/v1/job-types", headers=auth(admin)).status_code == 200
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(admin)).status_code == 200
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=auth(admin)).status_code == 202
    backend.wait_for_job(job_id, "succeeded")


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/openapi.json"])
def test_probes_and_the_openapi_document_need_no_token(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.is_json


# Errors


def test_a_malformed_json_body_is_a_bad_request(client: FlaskClient, writer: str) -> None:
    response = client.post(
        "/v1/jobs", data='{"type": "echo",', content_type="application/json", headers=auth(writer)
    )

    assert_error(response, 400)


def test_a_body_that_is_not_json_is_an_unsupported_media_type(client: FlaskClient, writer: str) -> None:
    response = client.post("/v1/jobs", data="type=echo", content_type="text/plain", headers=auth(writer))

    assert "application/json" in assert_error(response, 415)["message"]


def test_a_body_over_the_size_limit_is_too_large(backend: Backend, client: FlaskClient, writer: str) -> None:
    filler = "x" * (backend.settings.max_body_bytes + 1)

    response = post_job(client, writer, {"type": "echo", "payload": {"filler": filler}})

    assert_error(response, 413)


def test_an_unknown_job_type_is_unprocessable(client: FlaskClient, writer: str) -> None:
    response = post_job(client, writer, {"type": "no-such-type", "payload": {}})

    assert "type" in assert_error(response, 422)["errors"]["json"]


def test_a_payload_that_breaks_its_type_schema_is_unprocessable(client: FlaskClient, writer: str) -> None:
    response = post_job(client, writer, {"type": "sleep", "payload": {"ms": "x"}})

    assert "ms" in assert_error(response, 422)["errors"]["json"]["payload"]


def test_a_job_id_that_is_not_a_uuid_is_not_found(client: FlaskClient, writer: str) -> None:
    assert_error(client.get("/v1/jobs/not-a-uuid", headers=auth(writer)), 404)


def test_an_unknown_job_id_is_not_found(client: FlaskClient, writer: str) -> None:
    job_id = uuid.uuid4()

    assert str(job_id) in assert_error(client.get(f"/v1/jobs/{job_id}", headers=auth(writer)), 404)["message"]
    assert_error(client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(writer)), 404)
    assert_error(client.post(f"/v1/jobs/{job_id}/retry", headers=auth(writer)), 404)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "!!!", "bnVsbA", "WzEsMl0"])
def test_a_bad_cursor_is_a_bad_request(client: FlaskClient, writer: str, cursor: str) -> None:
    assert_error(client.get(f"/v1/jobs?cursor={cursor}", headers=auth(writer)), 400)


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_a_limit_out_of_range_is_unprocessable(client: FlaskClient, writer: str, limit: str) -> None:
    body = assert_error(client.get(f"/v1/jobs?limit={limit}", headers=auth(writer)), 422)

    assert "limit" in body["errors"]["query"]


def test_an_unknown_state_filter_is_unprocessable(client: FlaskClient, writer: str) -> None:
    body = assert_error(client.get("/v1/jobs?state=sleeping", headers=auth(writer)), 422)

    assert "state" in body["errors"]["query"]


def test_an_unknown_route_and_a_wrong_method_answer_in_json(client: FlaskClient, writer: str) -> None:
    assert_error(client.get("/v1/nothing-here", headers=auth(writer)), 404)
    assert_error(client.delete("/v1/jobs", headers=auth(writer)), 405)


# Listing


def test_pages_list_every_job_once_newest_first(client: FlaskClient, writer: str) -> None:
    mine = [submitted(client, writer, echo_job()) for _ in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = f"limit=2&cursor={cursor}" if cursor else "limit=2"
        page = client.get(f"/v1/jobs?{query}", headers=auth(writer)).get_json()
        assert len(page["items"]) <= 2
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)), "a job appeared on two pages"
    assert [job_id for job_id in seen if job_id in mine] == list(reversed(mine))


# Job types


def test_job_types_list_each_type_with_its_payload_schema(client: FlaskClient, writer: str) -> None:
    response = client.get("/v1/job-types", headers=auth(writer))

    assert response.status_code == 200
    listed = {item["name"]: item for item in response.get_json()}
    assert set(listed) == set(JOB_TYPES)
    assert {"echo", "sleep", "fail"} <= set(listed)
    for name, item in listed.items():
        schema = item["payload_schema"]
        assert schema["type"] == "object"
        assert set(schema["properties"]) == set(JOB_TYPES[name].schema().fields)
        assert item["task_name"] == JOB_TYPES[name].task_name
    assert listed["sleep"]["payload_schema"]["required"] == ["ms"]
    assert listed["sleep"]["payload_schema"]["properties"]["ms"]["type"] == "integer"


# Readiness


def test_ready_on_a_migrated_backend(client: FlaskClient) -> None:
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_not_ready_when_the_database_has_no_migrations(embedded: Backend, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    settings = load_settings({**embedded.env, "CONVEYOR_DATABASE_URL": f"sqlite:///{empty}"})

    response = create_app(settings).test_client().get("/health/ready")

    assert "migrations" in assert_error(response, 503)["message"]


@pytest.mark.parametrize("broker_url", ["amqp://guest:guest@127.0.0.1:1//", "redis://127.0.0.1:1/0"])
def test_not_ready_when_the_broker_is_unreachable(embedded: Backend, broker_url: str) -> None:
    settings = load_settings({**embedded.env, "CONVEYOR_BROKER_URL": broker_url})

    response = create_app(settings).test_client().get("/health/ready")

    message = assert_error(response, 503)["message"]
    assert "broker" in message
    assert "migrations" not in message


def test_a_request_while_the_database_is_unreachable_is_unavailable(embedded: Backend) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/test"
    settings = load_settings({**embedded.env, "CONVEYOR_DATABASE_URL": unreachable})

    response = post_job(create_app(settings).test_client(), "any-token", echo_job())

    assert "database is unavailable" in assert_error(response, 503)["message"]
    assert response.headers["Retry-After"] == "5"


def test_submissions_still_succeed_after_the_database_ended_the_pooled_connections(
    tmp_path: Path,
) -> None:
    require_services("rabbitmq")
    database = fresh_postgres_database(f"conveyor_test_api_reconnect_{uuid.uuid4().hex[:8]}")
    backend = Backend.create("embedded", tmp_path, {"CONVEYOR_DATABASE_URL": database})
    try:
        client = create_app(backend.settings).test_client()
        token = backend.token("jobs:write")
        body = echo_job()
        assert post_job(client, token, body).status_code == 202
        assert end_connections(database) > 0

        response = post_job(client, token, body)

        assert response.status_code == 202, response.get_json()
        assert jobs_with_correlation(backend, body["correlation_id"]) == 2
    finally:
        backend.stop()


# Cancel and retry


def test_cancelling_a_finished_job_is_a_conflict(backend: Backend, client: FlaskClient, writer: str) -> None:
    job_id = submitted(client, writer, echo_job())
    backend.wait_for_job(job_id, "succeeded")

    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(writer))

    assert "succeeded" in assert_error(response, 409)["message"]


def test_retrying_a_queued_job_is_a_conflict(client: FlaskClient, writer: str) -> None:
    job_id = submitted(client, writer, echo_job(run_at=FAR_FUTURE))

    response = client.post(f"/v1/jobs/{job_id}/retry", headers=auth(writer))

    assert "queued" in assert_error(response, 409)["message"]


def test_a_cancelled_job_can_be_retried_and_then_succeeds(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job_id = submitted(client, writer, echo_job(run_at=FAR_FUTURE))
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(writer))
    assert cancelled.status_code == 200
    assert cancelled.get_json()["state"] == "cancelled"

    retried = client.post(f"/v1/jobs/{job_id}/retry", headers=auth(writer))

    assert retried.status_code == 202
    assert retried.get_json()["state"] == "queued"
    job = backend.wait_for_job(job_id, "succeeded")
    assert job.attempts == 1
    assert job.result == {"n": 1}
