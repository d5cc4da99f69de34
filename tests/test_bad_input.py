"""Bad input gets a 4xx in the one error shape on every backend, SQLite and PostgreSQL alike:
never a 500, and never something stored that a client could not read back."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from flask.testing import FlaskClient

from tests.api_helpers import assert_error, echo_job, post_job
from tests.support import auth

EDGE_OF_TIME = "0001-01-01T00:30:00+01:00"  # before year 1 once moved to UTC


def cursor_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 5000])
def test_a_payload_with_a_number_json_has_not_is_a_bad_request(
    client: FlaskClient, writer: str, constant: str
) -> None:
    body = '{"type": "echo", "payload": {"x": ' + constant + "}}"
    response = client.post("/v1/jobs", data=body, content_type="application/json", headers=auth(writer))
    assert_error(response, 400)


def test_json_nested_too_deep_is_a_bad_request(client: FlaskClient, writer: str) -> None:
    body = '{"type": "echo", "payload": {"x": ' + "[" * 990 + "]" * 990 + "}}"
    response = client.post("/v1/jobs", data=body, content_type="application/json", headers=auth(writer))
    assert_error(response, 400)


@pytest.mark.parametrize("text", ["nul \u0000 here", "lone \udcff surrogate"], ids=["nul", "surrogate"])
def test_text_no_database_stores_is_refused_naming_the_field(
    client: FlaskClient, writer: str, text: str
) -> None:
    response = post_job(client, writer, echo_job(correlation_id=text))
    assert "correlation_id" in assert_error(response, 422)["errors"]["json"]


@pytest.mark.parametrize(
    ("path", "field"),
    [("/v1/jobs?type=a%00b", "type"), ("/v1/dead-letters?error=a%00b", "error")],
)
def test_a_filter_with_a_nul_is_refused_naming_it(
    client: FlaskClient, admin: str, path: str, field: str
) -> None:
    assert field in assert_error(client.get(path, headers=auth(admin)), 422)["errors"]["query"]


def test_an_idempotency_key_with_a_nul_is_a_bad_request(client: FlaskClient, writer: str) -> None:
    response = post_job(client, writer, echo_job(), **{"Idempotency-Key": "key\x00"})
    assert "Idempotency-Key" in assert_error(response, 400)["message"]


@pytest.mark.parametrize(
    "cursor",
    [cursor_of(["2026-01-01T00:00:00+00:00", 7]), cursor_of([EDGE_OF_TIME, str(uuid.uuid4())])],
    ids=["numeric-id", "edge-of-time"],
)
def test_a_cursor_of_the_wrong_shape_is_a_bad_request(client: FlaskClient, admin: str, cursor: str) -> None:
    for path in ("/v1/jobs", "/v1/dead-letters"):
        assert (
            "cursor"
            in assert_error(client.get(f"{path}?cursor={cursor}", headers=auth(admin)), 400)["message"]
        )


def test_times_at_the_edge_of_the_range_are_refused_naming_the_field(client: FlaskClient, admin: str) -> None:
    submitted = post_job(client, admin, echo_job(run_at=EDGE_OF_TIME))
    listed = client.get(f"/v1/dead-letters?since={EDGE_OF_TIME.replace('+', '%2B')}", headers=auth(admin))
    bulk = client.post("/v1/dead-letters/requeue", json={"until": EDGE_OF_TIME}, headers=auth(admin))

    assert "run_at" in assert_error(submitted, 422)["errors"]["json"]
    assert "since" in assert_error(listed, 422)["errors"]["query"]
    assert "until" in assert_error(bulk, 422)["errors"]["json"]


def test_a_flag_that_is_not_true_or_false_is_refused(client: FlaskClient, admin: str) -> None:
    response = client.post("/v1/dead-letters/requeue", json={"all": True, "dry_run": 0}, headers=auth(admin))
    assert "dry_run" in assert_error(response, 422)["errors"]["json"]


def test_a_purge_reason_over_500_characters_is_refused(client: FlaskClient, admin: str) -> None:
    response = client.delete(f"/v1/dead-letters/{uuid.uuid4()}?reason={'r' * 501}", headers=auth(admin))
    assert "reason" in assert_error(response, 422)["errors"]["query"]


def test_a_wrong_method_says_which_methods_are_allowed(client: FlaskClient, writer: str) -> None:
    response = client.delete("/v1/jobs", headers=auth(writer))
    assert_error(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_an_id_that_is_not_a_uuid_is_not_found_in_the_error_shape(client: FlaskClient, admin: str) -> None:
    for path in ("/v1/jobs/not-a-uuid", "/v1/dead-letters/requeue-me", "/v1/dead-letters/x/requeue"):
        assert "UUID" in assert_error(client.get(path, headers=auth(admin)), 404)["message"]


def test_a_url_too_long_is_refused_in_the_error_shape(client: FlaskClient, writer: str) -> None:
    assert_error(client.get("/v1/jobs?type=" + "t" * 9000, headers=auth(writer)), 414)


@pytest.mark.parametrize("queue", ["", "nope"])
def test_a_queue_that_is_not_declared_is_refused_naming_it(
    client: FlaskClient, writer: str, queue: str
) -> None:
    response = post_job(client, writer, echo_job(queue=queue))
    assert "queue" in assert_error(response, 422)["errors"]["json"]
