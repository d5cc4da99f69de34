"""Operators purge dead letters, retention purges old ones, and the API refuses what it must."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from jobs import dead_letters
from jobs.models import DeadLetter, utcnow
from tests.dead_letter_helpers import ids_listed, kill, letter, marker, token_actor
from tests.support import Backend, auth

# Purging


def test_purge_drops_the_message_and_keeps_an_audited_tombstone(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    _, letter_id = kill(backend, client, writer, text)

    first = client.delete(f"/v1/dead-letters/{letter_id}?reason=cleanup", headers=auth(ops))
    second = client.delete(f"/v1/dead-letters/{letter_id}?reason=cleanup", headers=auth(ops))

    assert first.status_code == 200, first.get_json()
    purged = first.get_json()
    assert purged["state"] == "purged" and purged["message"] == {} and purged["traceback"] is None
    assert [(e["action"], e["actor"], e["reason"]) for e in purged["audit"]] == [
        ("purge", token_actor(backend, ops), "cleanup")
    ]
    assert second.status_code == 409, second.get_json()
    assert ids_listed(client, ops, error=text) == set()
    assert ids_listed(client, ops, error=text, state="purged") == {letter_id}


def last_failed_days_ago(backend: Backend, letter_id: str, days: int) -> None:
    """Test data: the dead letter's last failure moved ``days`` into the past."""
    with backend.sessions.begin() as session:
        session.execute(
            update(DeadLetter)
            .where(DeadLetter.id == uuid.UUID(letter_id))
            .values(last_failed_at=utcnow() - timedelta(days=days))
        )


def test_retention_purges_only_dead_letters_older_than_it(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    _, old = kill(backend, client, writer, text)
    _, recent = kill(backend, client, writer, text)
    _, fresh = kill(backend, client, writer, text)
    last_failed_days_ago(backend, old, 31)
    last_failed_days_ago(backend, recent, 29)

    with backend.sessions.begin() as session:
        purged = dead_letters.purge_expired(session, timedelta(days=30), actor="test")

    assert purged >= 1
    assert letter(client, ops, old)["state"] == "purged"
    assert letter(client, ops, old)["audit"][0]["actor"] == "test"
    assert {letter(client, ops, i)["state"] for i in (recent, fresh)} == {"dead"}
    assert ids_listed(client, ops, error=text) == {recent, fresh}


# Access and bad requests


LETTER = "00000000-0000-4000-8000-000000000000"
ENDPOINTS = [
    ("get", "/v1/dead-letters", None),
    ("get", "/v1/dead-letters/stats", None),
    ("get", f"/v1/dead-letters/{LETTER}", None),
    ("post", f"/v1/dead-letters/{LETTER}/requeue", {}),
    ("post", "/v1/dead-letters/requeue", {"dry_run": True}),
    ("delete", f"/v1/dead-letters/{LETTER}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_needs_a_token_with_the_ops_scope(
    client: FlaskClient, writer: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    anonymous = getattr(client, method)(path, json=body)
    jobs_only = getattr(client, method)(path, json=body, headers=auth(writer))

    assert anonymous.status_code == 401, anonymous.get_json()
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert getattr(client, method)(path, query_string={"limit": "0"}, json=body).status_code == 401
    assert jobs_only.status_code == 403, jobs_only.get_json()
    assert "ops" in jobs_only.get_json()["message"]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"since": "not-a-date"},
        {"until": "2024-01-01T00:00:00"},
        {"state": "bogus"},
    ],
)
def test_bad_query_parameters_are_refused_naming_the_field(
    client: FlaskClient, ops: str, query: dict[str, str]
) -> None:
    response = client.get("/v1/dead-letters", query_string=query, headers=auth(ops))

    assert response.status_code == 422, response.get_json()
    assert set(query) <= set(json.dumps(response.get_json()["errors"]).replace('"', " ").split())


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WzEsMl0", "bm90IGpzb24"])
def test_a_cursor_not_from_a_previous_page_is_a_bad_request(
    client: FlaskClient, ops: str, cursor: str
) -> None:
    response = client.get("/v1/dead-letters", query_string={"cursor": cursor}, headers=auth(ops))

    assert response.status_code == 400, response.get_json()
    assert "cursor" in response.get_json()["message"]
