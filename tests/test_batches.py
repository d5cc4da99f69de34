"""``POST /v1/jobs/batch``: many jobs in one transaction, in order, all or none unless told,
with per-item idempotency keys that mean what ``Idempotency-Key`` means on ``POST /v1/jobs``."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api import create_app
from jobs import idempotency, tokens
from tests.api_helpers import assert_error, echo_job, jobs_with_correlation, new_key, post_job
from tests.support import Backend, auth

LOGIC_BACKENDS = ["embedded", "redis"]  # SQLite and PostgreSQL


def post_batch(client: FlaskClient, token: str, jobs: list[Any], **extra: Any) -> TestResponse:
    headers = extra.pop("headers", {})
    return client.post("/v1/jobs/batch", json={"jobs": jobs, **extra}, headers=auth(token, **headers))


def test_a_batch_is_accepted_in_order_and_every_job_runs(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    tag = uuid.uuid4().hex
    jobs = [{"type": "echo", "payload": {"n": n}, "correlation_id": tag} for n in range(40)]

    answer = post_batch(client, writer, jobs)

    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert (body["accepted"], body["replayed"], body["errors"], len(body["ids"])) == (40, [], [], 40)
    results = [backend.wait_for_job(job_id, "succeeded").result for job_id in body["ids"]]
    assert results == [{"n": n} for n in range(40)]


@pytest.mark.parametrize("backend", LOGIC_BACKENDS, indirect=True)
def test_one_invalid_item_refuses_the_whole_batch_naming_its_index(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    good, bad = echo_job(), {"type": "sleep", "payload": {"ms": "not a number"}}
    unknown = {"type": "no-such-type"}

    body = assert_error(post_batch(client, writer, [good, bad, good, unknown]), 422)

    assert set(body["errors"]["json"]["jobs"]) == {"1", "3"}
    assert "payload" in body["errors"]["json"]["jobs"]["1"] and "type" in body["errors"]["json"]["jobs"]["3"]
    assert jobs_with_correlation(backend, good["correlation_id"]) == 0


@pytest.mark.parametrize("backend", LOGIC_BACKENDS, indirect=True)
def test_atomic_false_accepts_the_valid_items_and_lists_the_refused(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    good = echo_job()
    jobs = [good, {"type": "echo", "payload": {"n": 1}, "priority": 99}, good, "not an object"]

    answer = post_batch(client, writer, jobs[:3], atomic=False)

    body = answer.get_json()
    assert answer.status_code == 202 and body["accepted"] == 2
    assert body["ids"][1] is None and body["ids"][0] and body["ids"][2]
    assert [error["index"] for error in body["errors"]] == [1] and "priority" in body["errors"][0]["errors"]
    assert jobs_with_correlation(backend, good["correlation_id"]) == 2
    listed = post_batch(client, writer, jobs, atomic=False).get_json()
    assert [error["index"] for error in listed["errors"]] == [1, 3] and listed["accepted"] == 2
    assert_error(post_batch(client, writer, [jobs[1]], atomic=False), 422)  # nothing accepted


@pytest.mark.parametrize("backend", LOGIC_BACKENDS, indirect=True)
def test_an_item_key_replays_its_job_in_a_batch_and_in_a_single_request(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job, key = echo_job(), new_key()

    first = post_batch(client, writer, [{**job, "idempotency_key": key}, echo_job()]).get_json()
    again = post_batch(client, writer, [{**job, "idempotency_key": key}]).get_json()
    single = post_job(client, writer, job, **{"Idempotency-Key": key})

    assert again["ids"] == first["ids"][:1] and again["replayed"] == [0] and again["accepted"] == 0
    assert single.headers["Idempotent-Replayed"] == "true" and single.get_json()["id"] == first["ids"][0]
    other = post_batch(client, writer, [{**echo_job(), "idempotency_key": key}])
    assert "idempotency_key" in assert_error(other, 422)["errors"]["json"]["jobs"]["0"]
    assert jobs_with_correlation(backend, job["correlation_id"]) == 1


@pytest.mark.parametrize("backend", LOGIC_BACKENDS, indirect=True)
def test_a_single_requests_key_is_replayed_by_a_batch_item(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job, key = echo_job(), new_key()
    made = post_job(client, writer, job, **{"Idempotency-Key": key}).get_json()

    repeated = post_batch(client, writer, [{**job, "idempotency_key": key}, {**job, "idempotency_key": key}])

    assert repeated.get_json()["ids"] == [made["id"], made["id"]] and repeated.get_json()["replayed"] == [
        0,
        1,
    ]
    twice = post_batch(client, writer, [{**echo_job(), "idempotency_key": "k2" + key}] * 2).get_json()
    assert twice["ids"][0] == twice["ids"][1] and twice["replayed"] == [1] and twice["accepted"] == 1


@pytest.mark.parametrize("backend", LOGIC_BACKENDS, indirect=True)
def test_the_requests_own_key_replays_the_whole_answer(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    jobs, key = [echo_job(), echo_job()], new_key()

    first = post_batch(client, writer, jobs, headers={"Idempotency-Key": key})
    replay = post_batch(client, writer, jobs, headers={"Idempotency-Key": key})

    assert replay.get_json() == first.get_json() and replay.headers["Idempotent-Replayed"] == "true"
    assert jobs_with_correlation(backend, jobs[0]["correlation_id"]) == 1


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_limits_scopes_and_keys_are_checked(backend: Backend, writer: str) -> None:
    client = create_app(dataclasses.replace(backend.settings, max_batch=3)).test_client()

    assert "at most 3" in assert_error(post_batch(client, writer, [echo_job()] * 4), 422)["message"]
    assert_error(post_batch(client, writer, []), 422)
    upkeep = post_batch(client, writer, [echo_job(), {"type": "purge-idempotency-keys"}], atomic=False)
    assert "scope" in upkeep.get_json()["errors"][0]["errors"]["type"][0]
    blank_key = post_batch(client, writer, [{**echo_job(), "idempotency_key": ""}])
    assert "idempotency_key" in assert_error(blank_key, 422)["errors"]["json"]["jobs"]["0"]


@pytest.mark.parametrize("backend", LOGIC_BACKENDS, indirect=True)
def test_a_key_another_request_holds_is_a_409_and_nothing_is_submitted(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job, key = echo_job(), new_key()
    with backend.sessions.begin() as session:
        token = tokens.authenticate(session, writer)
        assert token is not None
        fingerprint = idempotency.request_hash("POST", "/v1/jobs", job)  # the same job, still being sent
        idempotency.begin(session, token.id, key, fingerprint, timedelta(hours=1))

    held = post_batch(client, writer, [echo_job(), {**job, "idempotency_key": key}])

    assert_error(held, 409)
    assert jobs_with_correlation(backend, job["correlation_id"]) == 0
