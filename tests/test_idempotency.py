"""POSTs with an ``Idempotency-Key`` run once: replays, reuse, scoping and concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from jobs import idempotency, tokens
from jobs.db import Database
from jobs.errors import KeyInFlightError
from jobs.models import ApiToken, IdempotencyKey, utcnow
from tests.api_helpers import assert_error, echo_job, jobs_with_correlation, new_key, post_job
from tests.support import Backend, auth, serving

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
    with serving(app) as url:
        yield url


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


def test_an_in_flight_key_kept_alive_is_not_taken_for_abandoned(database: Database) -> None:
    with database.sessions.begin() as session:
        tokens.create_token(session, "uploader", ["jobs:write"])
    with database.sessions.begin() as session:
        token_id = session.scalars(select(ApiToken.id)).one()
        assert idempotency.begin(session, token_id, "upload", "hash", timedelta(hours=1)) is None
    with database.sessions.begin() as session:
        row = session.get(IdempotencyKey, (token_id, "upload"))
        assert row is not None
        row.created_at = utcnow() - idempotency.ABANDONED_AFTER * 2  # a long upload, still reading
    with database.sessions.begin() as session:
        idempotency.touch(session, token_id, "upload")
    with database.sessions.begin() as session, pytest.raises(KeyInFlightError):
        idempotency.begin(session, token_id, "upload", "hash", timedelta(hours=1))
