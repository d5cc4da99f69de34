"""Operators see and requeue real dead letters through ``/v1/dead-letters``.

Every dead letter here comes from a ``fail`` job a real worker ran.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.dead_letter_helpers import (
    LETTER_FIELDS,
    dead_letter_of,
    exhaust,
    ids_listed,
    job,
    kill,
    letter,
    listed,
    marker,
    token_actor,
)
from tests.support import Backend, auth

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
