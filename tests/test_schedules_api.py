"""``/v1/schedules`` and ``conveyor schedules``: what beat runs, and what operators do with it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from jobs.models import AuditEntry, ScheduleState, utcnow
from schedules.beat import SCHEDULE
from tests.api_helpers import assert_error
from tests.support import Backend, auth, conveyor

PURGE = "purge-idempotency-keys"


# Schedules and backups depend on the database (SQLite, PostgreSQL), not on the broker.
pytestmark = pytest.mark.parametrize("backend", ["embedded", "redis"], indirect=True)


def listed(client: FlaskClient, token: str) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/schedules", headers=auth(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    return {item["name"]: item for item in response.get_json()["items"]}


def test_operators_see_every_schedule_and_why_one_does_not_run(client: FlaskClient, ops: str) -> None:
    found = listed(client, ops)
    assert set(found) == set(SCHEDULE)
    assert found["offsite-sync"]["off"] == "needs CONVEYOR_OFFSITE_SYNC_URL"
    assert found["offsite-sync"]["next_run"] is None and not found["offsite-sync"]["late"]
    assert found[PURGE]["cron"] == "*/15 * * * *" and found[PURGE]["next_run"] is not None


def test_only_operators_see_the_schedules(client: FlaskClient, writer: str) -> None:
    assert_error(client.get("/v1/schedules", headers=auth(writer)), 403)
    assert_error(client.get("/v1/schedules/nope", headers=auth(writer)), 403)


def test_a_schedule_run_now_records_its_outcome_and_last_success(
    backend: Backend, client: FlaskClient, ops: str
) -> None:
    response = client.post(f"/v1/schedules/{PURGE}/run", headers=auth(ops))
    assert response.status_code == 202, response.get_data(as_text=True)
    run = response.get_json()
    assert run["trigger"] == "manual" and response.headers["Location"] == f"/v1/jobs/{run['job_id']}"
    job = backend.wait_for_job(run["job_id"], "succeeded", timeout=60)
    assert job.causation_id == run["id"] and job.result == {"purged": 0}
    shown = client.get(f"/v1/schedules/{PURGE}", headers=auth(ops)).get_json()
    assert shown["last_outcome"] == "succeeded" and shown["last_success"] is not None
    assert not shown["late"]


def test_a_schedule_with_no_success_for_a_period_and_its_grace_is_late(
    backend: Backend, client: FlaskClient, ops: str
) -> None:
    name = "purge-dead-letters"
    listed(client, ops)  # beat's state rows exist once the schedules are seen
    with backend.sessions.begin() as session:
        session.execute(
            update(ScheduleState).where(ScheduleState.name == name).values(since=utcnow() - timedelta(days=1))
        )
    assert listed(client, ops)[name]["late"] is True


def test_pause_and_resume_persist_and_are_audited(backend: Backend, client: FlaskClient, ops: str) -> None:
    paused = client.post("/v1/schedules/purge-dead-letters/pause", headers=auth(ops)).get_json()
    assert (
        paused["paused"] is True and paused["next_run"] is None and paused["paused_by"].startswith("token:")
    )
    resumed = client.post("/v1/schedules/purge-dead-letters/resume", headers=auth(ops)).get_json()
    assert resumed["paused"] is False and resumed["next_run"] is not None
    with backend.sessions() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.dead_letter_id.is_(None))).all()
    assert {"schedule-pause", "schedule-resume"} <= set(actions)


def test_an_unknown_or_off_schedule_is_a_clear_4xx(client: FlaskClient, ops: str) -> None:
    assert (
        "the schedules are"
        in assert_error(client.get("/v1/schedules/nope", headers=auth(ops)), 404)["message"]
    )
    off = assert_error(client.post("/v1/schedules/offsite-sync/run", headers=auth(ops)), 409)
    assert off["message"] == "Schedule offsite-sync is off here: it needs CONVEYOR_OFFSITE_SYNC_URL."


def test_the_cli_lists_runs_pauses_and_resumes_schedules(backend: Backend) -> None:
    table = conveyor(backend, "schedules", "list")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:2] == ["NAME", "CRON"]
    assert "offsite-sync" in table.stdout
    shown = json.loads(conveyor(backend, "schedules", "list", "--json").stdout)
    assert {item["name"] for item in shown} == set(SCHEDULE)
    for action in ("pause", "resume"):
        done = conveyor(backend, "schedules", action, "purge-dead-letters")
        assert done.returncode == 0 and f"purge-dead-letters is {action}d" in done.stderr
    ran = conveyor(backend, "schedules", "run", "purge-dead-letters")
    assert ran.returncode == 0, ran.stderr
    backend.wait_for_job(json.loads(ran.stdout)["job_id"], "succeeded", timeout=60)
    unknown = conveyor(backend, "schedules", "run", "nope")
    assert unknown.returncode == 1 and "No schedule is named 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
