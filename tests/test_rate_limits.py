"""Rate limits per token on submission and the bulk endpoints: a burst of three times the limit
gets exactly twice the limit of 429s, in the one error shape and with the IETF headers."""

from __future__ import annotations

import dataclasses

import pytest
from flask.testing import FlaskClient

from api import create_app
from jobs import tokens
from tests.api_helpers import assert_error
from tests.support import Backend, auth

ECHO = {"type": "echo", "payload": {"n": 1}}
LIMIT = 5


def app_for(backend: Backend, **limits: str) -> FlaskClient:
    return create_app(dataclasses.replace(backend.settings, rate_limits=limits)).test_client()


@pytest.mark.parametrize("backend", ["redis", "embedded"], indirect=True)
def test_a_burst_of_three_times_the_limit_gets_twice_the_limit_of_429s(backend: Backend) -> None:
    client = app_for(backend, **{"jobs:write": f"{LIMIT}/minute", "default": "1000/minute"})
    token = backend.token("jobs:write", "jobs:read")
    answers = [client.post("/v1/jobs", json=ECHO, headers=auth(token)) for _ in range(3 * LIMIT)]
    assert [a.status_code for a in answers].count(429) == 2 * LIMIT
    assert [a.status_code for a in answers[:LIMIT]] == [202] * LIMIT
    first, refused = answers[0], answers[-1]
    assert first.headers["RateLimit-Policy"] == f'"jobs:write";q={LIMIT};w=60'
    assert first.headers["RateLimit"].startswith(f'"jobs:write";r={LIMIT - 1};t=')
    assert "too many requests" in assert_error(refused, 429)["message"].lower()
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit"].startswith('"jobs:write";r=0;t=')
    assert all(client.get("/health/live").status_code == 200 for _ in range(3 * LIMIT))


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_each_token_counts_apart_and_a_token_may_have_a_limit_of_its_own(backend: Backend) -> None:
    client = app_for(backend, **{"default": f"{LIMIT}/minute", "token:etl": f"{3 * LIMIT}/minute"})
    with backend.sessions.begin() as session:
        etl = tokens.create_token(session, "etl", ["jobs:write"])
    other = backend.token("jobs:write")
    assert all(
        client.post("/v1/jobs", json=ECHO, headers=auth(etl)).status_code == 202 for _ in range(3 * LIMIT)
    )
    assert [client.post("/v1/jobs", json=ECHO, headers=auth(other)).status_code for _ in range(LIMIT)] == [
        202
    ] * LIMIT


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_no_limits_set_limits_nothing(backend: Backend) -> None:
    client = app_for(backend)
    token = backend.token("jobs:write")
    answers = [client.post("/v1/jobs", json=ECHO, headers=auth(token)) for _ in range(20)]
    assert {a.status_code for a in answers} == {202} and "RateLimit" not in answers[0].headers
