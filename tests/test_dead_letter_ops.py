"""Operators see, requeue and purge real dead letters through ``/v1/dead-letters`` and the CLI.

Every dead letter here comes from a ``fail`` job a real worker ran. Tests share each backend's
database, so each one tells its own dead letters apart by a unique error message.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from jobs import dead_letters, tokens
from jobs.models import DeadLetter, utcnow
from tests.support import Backend, auth, conveyor, submit, wait_until

LETTER_FIELDS = {
    "id", "job_id", "type", "queue", "task_name", "error_type", "error", "traceback", "attempts",
    "worker", "first_failed_at", "last_failed_at", "requeues", "message", "state", "reason", "audit",
}  # fmt: skip


@pytest.fixture(scope="module")
def ops(backend: Backend) -> str:
    return backend.token("ops")


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


# Reading


def test_a_dead_letter_is_listed_with_every_documented_field(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    job_id, letter_id = kill(backend, client, writer, text)

    items = listed(client, ops, error=text)

    assert [item["id"] for item in items] == [letter_id]
    item = items[0]
    assert item.keys() >= LETTER_FIELDS
    assert item["job_id"] == job_id
    assert (item["type"], item["queue"], item["task_name"]) == (
        "fail",
        "default",
        "conveyor.diagnostics.fail",
    )
    assert (item["error_type"], item["error"], item["reason"]) == ("PermanentError", text, "permanent_error")
    assert "PermanentError" in item["traceback"]
    assert item["attempts"] == 1 and item["state"] == "dead"
    assert item["worker"].startswith("test-")
    assert item["first_failed_at"] <= item["last_failed_at"]
    assert item["requeues"] == [] and item["audit"] == []
    assert item["message"]["headers"]["id"] == f"{job_id}.1"
    assert job_id in item["message"]["body"]


def test_filters_by_queue_type_error_and_time_narrow_the_list(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    _, permanent = kill(backend, client, writer, text)
    _, exhausted = exhaust(backend, client, writer, text)
    failed_at = letter(client, ops, exhausted)["last_failed_at"]

    assert ids_listed(client, ops, error=text) == {permanent, exhausted}
    assert ids_listed(client, ops, error=text, queue="default", type="fail") == {permanent, exhausted}
    assert ids_listed(client, ops, error=text, queue="ocr") == set()
    assert ids_listed(client, ops, error=text, type="echo") == set()
    assert exhausted in ids_listed(client, ops, error="RetryableError", limit=500)
    assert permanent not in ids_listed(client, ops, error="RetryableError", limit=500)
    assert ids_listed(client, ops, error=text, since=failed_at) == {exhausted}
    assert ids_listed(client, ops, error=text, until=failed_at) == {permanent}
    assert ids_listed(client, ops, error=text, since="2000-01-01T00:00:00+00:00", until=failed_at) == {
        permanent
    }


def test_pages_follow_next_cursor_to_the_end_without_repeats(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    made = {kill(backend, client, writer, text)[1] for _ in range(3)}

    seen: list[str] = []
    query: dict[str, Any] = {"error": text, "limit": 2}
    for _ in range(5):
        page = client.get("/v1/dead-letters", query_string=query, headers=auth(ops)).get_json()
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]

    assert len(seen) == 3 and set(seen) == made


def test_one_dead_letter_is_shown_by_id_and_unknown_ids_are_not_found(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    job_id, letter_id = kill(backend, client, writer, marker())

    shown = letter(client, ops, letter_id)

    assert shown["id"] == letter_id and shown["job_id"] == job_id
    assert shown.keys() >= LETTER_FIELDS
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        response = client.get(f"/v1/dead-letters/{unknown}", headers=auth(ops))
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["code"] == 404


def test_stats_count_waiting_dead_letters_by_queue_type_and_error(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    before = client.get("/v1/dead-letters/stats", headers=auth(ops)).get_json()

    kill(backend, client, writer, marker())
    after = client.get("/v1/dead-letters/stats", headers=auth(ops)).get_json()

    assert after["total"] == before["total"] + 1
    assert after["queue"]["default"] == before["queue"].get("default", 0) + 1
    assert after["type"]["fail"] == before["type"].get("fail", 0) + 1
    assert after["error"]["PermanentError"] == before["error"].get("PermanentError", 0) + 1
    for by in ("queue", "type", "error"):
        assert sum(after[by].values()) == after["total"]


# Requeueing


def test_requeue_with_a_corrected_payload_runs_the_same_job_to_success(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    job_id, letter_id = exhaust(backend, client, writer, marker(), times=5)

    response = client.post(
        f"/v1/dead-letters/{letter_id}/requeue",
        json={"payload": {"times": 0}, "reason": "fixed"},
        headers=auth(ops),
    )

    assert response.status_code == 200, response.get_json()
    done = backend.wait_for_job(job_id, "succeeded", "dead")
    assert done.state == "succeeded" and done.result == {"failed_times": 0}
    ran = job(client, writer, job_id)
    assert ran["attempts"] == 1
    assert ran["requeued_from"] == letter_id
    requeued = letter(client, ops, letter_id)
    assert requeued["state"] == "requeued"
    assert len(requeued["requeues"]) == 1
    entry = requeued["requeues"][0]
    assert (entry["actor"], entry["reason"]) == (token_actor(backend, ops), "fixed")
    assert entry["details"]["job_id"] == job_id and entry["details"]["payload_corrected"] is True


def test_a_corrected_payload_its_schema_refuses_changes_nothing(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    job_id, letter_id = exhaust(backend, client, writer, marker(), times=5)

    response = client.post(
        f"/v1/dead-letters/{letter_id}/requeue", json={"payload": {"times": "x"}}, headers=auth(ops)
    )

    assert response.status_code == 422, response.get_json()
    assert "times" in json.dumps(response.get_json()["errors"])
    unchanged = letter(client, ops, letter_id)
    assert unchanged["state"] == "dead" and unchanged["requeues"] == [] and unchanged["audit"] == []
    still = job(client, writer, job_id)
    assert still["state"] == "dead" and still["payload"]["times"] == 5 and still["requeued_from"] is None


def test_requeueing_a_dead_letter_twice_is_a_conflict(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    job_id, letter_id = exhaust(backend, client, writer, marker(), times=5)
    path = f"/v1/dead-letters/{letter_id}/requeue"

    first = client.post(path, json={"payload": {"times": 0}}, headers=auth(ops))
    second = client.post(path, json={"payload": {"times": 0}}, headers=auth(ops))

    assert first.status_code == 200, first.get_json()
    assert second.status_code == 409, second.get_json()
    assert backend.wait_for_job(job_id, "succeeded", "dead").state == "succeeded"
    assert len(letter(client, ops, letter_id)["requeues"]) == 1


@pytest.mark.parametrize("unknown", [str(uuid.UUID(int=7)), "not-a-uuid"])
def test_requeueing_or_purging_an_unknown_dead_letter_is_not_found(
    client: FlaskClient, ops: str, unknown: str
) -> None:
    requeued = client.post(f"/v1/dead-letters/{unknown}/requeue", json={}, headers=auth(ops))
    purged = client.delete(f"/v1/dead-letters/{unknown}", headers=auth(ops))

    assert (requeued.status_code, purged.status_code) == (404, 404)


def test_bulk_requeue_dry_run_counts_the_matches_and_changes_nothing(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    made = {exhaust(backend, client, writer, text)[1] for _ in range(2)}

    response = client.post(
        "/v1/dead-letters/requeue", json={"error": text, "dry_run": True}, headers=auth(ops)
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"dry_run": True, "matched": 2, "requeued": 0, "skipped": []}
    assert ids_listed(client, ops, error=text) == made
    assert all(letter(client, ops, letter_id)["audit"] == [] for letter_id in made)


def test_bulk_requeue_sends_every_match_again_and_a_replay_requeues_nothing_more(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    made = dict(exhaust(backend, client, writer, text) for _ in range(2))
    key = {"Idempotency-Key": f"bulk-{uuid.uuid4()}"}
    body = {"error": text, "reason": "broker fixed"}

    first = client.post("/v1/dead-letters/requeue", json=body, headers=auth(ops, **key))

    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"dry_run": False, "matched": 2, "requeued": 2, "skipped": []}
    for job_id, letter_id in made.items():
        assert letter(client, ops, letter_id)["state"] == "requeued"
        assert letter(client, ops, letter_id)["requeues"][0]["reason"] == "broker fixed"
        assert job(client, writer, job_id)["requeued_from"] == letter_id
    # The requeued runs fail again (attempts restart, times=1): each job dies with a new letter.
    again = {dead_letter_of(backend, job_id, besides=letter_id) for job_id, letter_id in made.items()}
    assert all(backend.job(job_id).attempts == 1 for job_id in made)

    replay = client.post("/v1/dead-letters/requeue", json=body, headers=auth(ops, **key))

    assert replay.status_code == 200
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json() == first.get_json()
    assert ids_listed(client, ops, error=text) == again
    assert all(len(letter(client, ops, letter_id)["requeues"]) == 1 for letter_id in made.values())


def test_retrying_a_job_by_hand_resolves_its_waiting_dead_letter(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    job_id, first = kill(backend, client, writer, text)

    assert client.post(f"/v1/jobs/{job_id}/retry", headers=auth(writer)).status_code == 202

    resolved = letter(client, ops, first)
    assert resolved["state"] == "requeued"
    assert [e["reason"] for e in resolved["requeues"]] == ["the job was retried"]
    second = dead_letter_of(backend, job_id, besides=first)  # the retried run dies again
    response = client.post(
        "/v1/dead-letters/requeue", json={"error": text, "dry_run": True}, headers=auth(ops)
    )
    assert response.get_json()["matched"] == 1
    assert ids_listed(client, ops, error=text) == {second}


def test_bulk_requeue_without_any_filter_needs_all(client: FlaskClient, ops: str) -> None:
    response = client.post("/v1/dead-letters/requeue", json={"dry_run": True}, headers=auth(ops))

    assert response.status_code == 422
    assert "all: true" in response.get_json()["message"]


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


# The CLI


def dead_letters_cli(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    return conveyor(backend, "dead-letters", *args)


def succeeds(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails_clearly(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode != 0, done.stdout
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_cli_lists_dead_letters_as_a_table_and_as_json(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    text = marker()
    job_id, letter_id = kill(backend, client, writer, text)

    table = succeeds(dead_letters_cli(backend, "list", "--error", text))
    as_json = json.loads(succeeds(dead_letters_cli(backend, "list", "--error", text, "--json")))

    header, *rows = table.splitlines()
    assert header.split()[:3] == ["ID", "QUEUE", "TYPE"]
    assert len(rows) == 1 and rows[0].startswith(letter_id)
    assert [item["id"] for item in as_json] == [letter_id]
    assert as_json[0].keys() >= LETTER_FIELDS and as_json[0]["job_id"] == job_id


def test_cli_shows_one_dead_letter_and_the_stats_as_json(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    text = marker()
    _, letter_id = kill(backend, client, writer, text)

    shown = json.loads(succeeds(dead_letters_cli(backend, "show", letter_id)))
    stats = json.loads(succeeds(dead_letters_cli(backend, "stats", "--json")))

    assert shown["id"] == letter_id and shown["error"] == text
    assert shown["message"]["headers"]["id"] == f"{shown['job_id']}.1"
    assert stats["queue"]["default"] >= 1 and stats["type"]["fail"] >= 1
    assert stats["error"]["PermanentError"] >= 1


def test_cli_requeues_one_dead_letter_with_a_corrected_payload_as_the_cli_user(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    job_id, letter_id = exhaust(backend, client, writer, marker(), times=5)

    done = dead_letters_cli(backend, "requeue", letter_id, "--payload", '{"times": 0}', "--reason", "x")

    assert "Requeued 1" in succeeds(done) + done.stderr
    assert backend.wait_for_job(job_id, "succeeded", "dead").state == "succeeded"
    entry = letter(client, ops, letter_id)["requeues"][0]
    assert (entry["actor"], entry["reason"]) == (f"cli:{getpass.getuser()}", "x")


def test_cli_bulk_requeue_dry_run_prints_the_count_and_changes_nothing(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    made = {exhaust(backend, client, writer, text)[1] for _ in range(2)}

    done = dead_letters_cli(backend, "requeue", "--error", text, "--dry-run")

    succeeds(done)
    assert "2 dead letters match" in done.stderr
    assert ids_listed(client, ops, error=text) == made


def test_cli_bulk_requeue_without_yes_and_no_terminal_refuses(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    _, letter_id = exhaust(backend, client, writer, text)

    fails_clearly(dead_letters_cli(backend, "requeue", "--error", text), "--yes")

    assert letter(client, ops, letter_id)["state"] == "dead"


def test_cli_bulk_requeue_with_yes_requeues_every_match(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    made = dict(exhaust(backend, client, writer, text) for _ in range(2))

    done = dead_letters_cli(backend, "requeue", "--error", text, "--yes", "--reason", "bulk")

    assert "Requeued 2" in succeeds(done) + done.stderr
    for job_id, letter_id in made.items():
        entry = letter(client, ops, letter_id)["requeues"][0]
        assert (entry["actor"], entry["reason"]) == (f"cli:{getpass.getuser()}", "bulk")
        # The run fails again (attempts restart); wait, so no later test sees it die.
        dead_letter_of(backend, job_id, besides=letter_id)


def test_cli_purges_a_dead_letter_by_id(backend: Backend, client: FlaskClient, writer: str, ops: str) -> None:
    _, letter_id = kill(backend, client, writer, marker())

    done = dead_letters_cli(backend, "purge", letter_id, "--yes", "--reason", "r")

    assert "Purged 1" in succeeds(done) + done.stderr
    purged = letter(client, ops, letter_id)
    assert purged["state"] == "purged" and purged["message"] == {}
    assert [(e["action"], e["actor"], e["reason"]) for e in purged["audit"]] == [
        ("purge", f"cli:{getpass.getuser()}", "r")
    ]


def test_cli_purge_without_ids_or_expired_fails_clearly(backend: Backend) -> None:
    fails_clearly(dead_letters_cli(backend, "purge", "--yes"), "--expired")


def test_cli_show_of_a_non_uuid_fails_clearly(backend: Backend) -> None:
    fails_clearly(dead_letters_cli(backend, "show", "not-a-uuid"), "not-a-uuid")
