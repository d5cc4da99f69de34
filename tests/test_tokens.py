"""Tokens can be listed, made to expire and revoked, from the API and the CLI; a revoked token is
refused by every API process within its token cache's time to live."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update

from api.runtime import TokenCache
from jobs import tokens
from jobs.models import ApiToken, utcnow
from tests.api_helpers import assert_error
from tests.support import Backend, auth, conveyor, wait_until


def test_an_admin_lists_tokens_without_their_secrets(client: FlaskClient, admin: str) -> None:
    response = client.get("/v1/tokens", headers=auth(admin))

    assert response.status_code == 200, response.get_json()
    listed = response.get_json()
    assert listed and all("token_hash" not in token and token["scopes"] for token in listed)


def test_only_an_admin_may_read_or_revoke_tokens(client: FlaskClient, writer: str, ops: str) -> None:
    for token in (writer, ops):
        assert_error(client.get("/v1/tokens", headers=auth(token)), 403)


def test_a_token_revoked_over_the_api_is_refused_and_revoking_it_again_is_a_conflict(
    backend: Backend, client: FlaskClient, admin: str
) -> None:
    token_id = id_of(backend, victim := backend.token("jobs:read"))

    revoked = client.delete(f"/v1/tokens/{token_id}", headers=auth(admin))
    again = client.delete(f"/v1/tokens/{token_id}", headers=auth(admin))

    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    assert "already revoked" in assert_error(again, 409)["message"]
    wait_until(lambda: refused(client, victim), TokenCache.TTL_S + 5, "the revoked token to be refused")


def test_a_token_revoked_from_the_cli_is_refused_within_the_cache_ttl(
    backend: Backend, client: FlaskClient
) -> None:
    victim = backend.token("jobs:read")
    assert client.get("/v1/jobs", headers=auth(victim)).status_code == 200  # now cached
    revoked_at = time.monotonic()

    done = conveyor(backend, "tokens", "revoke", str(id_of(backend, victim)))

    assert done.returncode == 0, done.stderr
    wait_until(lambda: refused(client, victim), TokenCache.TTL_S + 5, "the revoked token to be refused")
    assert time.monotonic() - revoked_at <= TokenCache.TTL_S + 2


def test_an_expired_token_is_refused(backend: Backend, client: FlaskClient) -> None:
    victim = backend.token("jobs:read")
    with backend.sessions.begin() as session:
        expired = update(ApiToken).where(ApiToken.id == id_of(backend, victim))
        session.execute(expired.values(expires_at=utcnow() - timedelta(seconds=1)))

    assert refused(client, victim)


def test_the_cli_makes_a_token_that_expires_and_lists_it(backend: Backend) -> None:
    made = conveyor(
        backend, "tokens", "create", "--scopes", "jobs:read", "--name", "short", "--expires-in", "12h"
    )
    listed = json.loads(conveyor(backend, "tokens", "list", "--json").stdout)
    table = conveyor(backend, "tokens", "list")

    assert made.returncode == 0, made.stderr
    mine = [t for t in listed if t["id"] == str(id_of(backend, made.stdout.strip()))]
    assert mine and mine[0]["expires_at"] and mine[0]["revoked_at"] is None
    assert "expires" in table.stdout


def test_the_cli_refuses_a_duration_it_cannot_read(backend: Backend) -> None:
    done = conveyor(backend, "tokens", "create", "--scopes", "jobs:read", "--expires-in", "soon")
    assert done.returncode == 2 and "not a duration" in done.stderr and "Traceback" not in done.stderr


def id_of(backend: Backend, token: str) -> object:
    with backend.sessions() as session:
        found = tokens.authenticate(session, token)
        assert found is not None
        return found.id


def refused(client: FlaskClient, token: str) -> bool:
    return client.get("/v1/jobs", headers=auth(token)).status_code == 401
