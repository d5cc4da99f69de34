"""The HTTP contract on each backend: auth, errors, listing, job types, readiness, cancel and retry."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from api import create_app
from jobs.catalogue import JOB_TYPES
from jobs.settings import load_settings
from tests.api_helpers import FAR_FUTURE, assert_error, echo_job, jobs_with_correlation, post_job, submitted
from tests.services import end_connections, fresh_postgres_database, require_services
from tests.support import Backend, auth

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
        declared = JOB_TYPES[name].schema().fields.items()
        assert set(schema["properties"]) == {field.data_key or key for key, field in declared}
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
