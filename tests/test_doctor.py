"""`conveyor doctor` tells a healthy platform from a broken one, check by check, with the command
to run next, as text and as JSON, and exits 1 on any fail."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from jobs import service
from jobs.models import DeadLetter, Heartbeat, Job, OutboxMessage, utcnow
from tests.support import Backend, conveyor

STRONG_FLOWER = "ops:" + "k" * 24


def doctor(backend: Backend, **env: Any) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    done = conveyor(backend, "doctor", "--json", **env)
    assert "Traceback" not in done.stderr, done.stderr
    by_name: dict[str, list[dict[str, Any]]] = {}
    for check in json.loads(done.stdout)["checks"]:
        by_name.setdefault(check["name"], []).append(check)
    return done.returncode, by_name


def statuses(found: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    return {name: checks[0]["status"] for name, checks in found.items()}


def beat_and_relay_alive(backend: Backend) -> None:
    with backend.sessions.begin() as session:
        for component in ("beat", "relay"):
            session.add(Heartbeat(component=component, instance="test", beat_at=utcnow()))


def test_a_healthy_embedded_platform_passes_every_check_it_can_make(embedded: Backend) -> None:
    beat_and_relay_alive(embedded)

    code, found = doctor(embedded, CONVEYOR_FLOWER_BASIC_AUTH=STRONG_FLOWER)

    assert code == 0, found
    assert statuses(found) == {
        **dict.fromkeys(["settings", "credentials", "flower-auth", "database", "broker"], "ok"),
        **dict.fromkeys(["queues", "outbox", "dead-letters", "beat", "relay", "schedules"], "ok"),
        "consumers": "skip",  # the file-system broker cannot broadcast
        "db-connections": "skip",  # SQLite
        "backups": "skip",  # the backup schedule needs PostgreSQL
    }


def test_a_broken_platform_fails_each_check_with_the_command_to_run_next(
    own_backend: Callable[..., Backend],
) -> None:
    backend = own_backend("rabbitmq")  # no worker, no relay, no beat
    stale = utcnow() - timedelta(minutes=20)
    with backend.sessions.begin() as session:
        ocr = service.submit(session, backend.settings, service.Submission("echo", {}, queue="ocr"))
        session.flush()
        session.execute(update(Job).where(Job.id == ocr.id).values(queued_at=stale))
        session.execute(update(OutboxMessage).values(available_at=stale))
        session.add(dead_letter())

    code, found = doctor(backend, CONVEYOR_FLOWER_BASIC_AUTH="admin:admin")

    assert code == 1
    got = statuses(found)
    assert {
        name: got[name] for name in ("consumers", "queues", "outbox", "beat", "relay", "flower-auth")
    } == (dict.fromkeys(["consumers", "queues", "outbox", "beat", "relay", "flower-auth"], "fail"))
    assert got["dead-letters"] == "warn" and got["credentials"] == "warn"  # guest, on loopback only
    assert got["database"] == got["broker"] == got["schedules"] == "ok"
    backlog = found["queues"][0]
    assert backlog["message"].startswith("OCR backlog: 1 jobs wait in ocr, the oldest for 20 min")
    assert "--scale ocr-worker=" in backlog["next"]
    assert (
        "ocr-worker" in found["consumers"][0]["next"]
        and "conveyor dead-letters" in found["dead-letters"][0]["next"]
    )


def test_the_text_report_gives_a_line_a_check_and_the_next_step_under_a_fail(embedded: Backend) -> None:
    done = conveyor(embedded, "doctor", CONVEYOR_FLOWER_BASIC_AUTH=STRONG_FLOWER)

    assert done.returncode == 1  # no beat or relay ever ran here
    lines = done.stdout.splitlines()
    assert any(line.split()[:2] == ["fail", "beat"] for line in lines), done.stdout
    fail_at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["fail", "beat"])
    assert lines[fail_at + 1].split()[0] == "next:" and "conveyor beat" in lines[fail_at + 1]
    assert lines[-1] == "9 ok, 2 fail, 3 skip"


def test_with_the_database_down_the_doctor_says_so_and_skips_what_needs_it(embedded: Backend) -> None:
    code, found = doctor(embedded, CONVEYOR_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")

    assert code == 1 and found["database"][0]["status"] == "fail"
    assert "cannot be reached" in found["database"][0]["message"]
    assert all(found[name][0]["status"] == "skip" for name in ("queues", "outbox", "heartbeats", "backups"))


def test_an_idle_broker_with_no_worker_warns_and_unset_flower_login_is_skipped(
    own_backend: Callable[..., Backend],
) -> None:
    _, found = doctor(own_backend("redis"))

    assert found["consumers"][0]["status"] == "warn" and "no job waits" in found["consumers"][0]["message"]
    assert found["flower-auth"][0]["status"] == "skip"  # compose gives the login to Flower alone
    assert found["db-connections"][0]["status"] == "ok" and " of " in found["db-connections"][0]["message"]


def test_a_malformed_database_url_is_a_settings_error_that_hides_its_password(embedded: Backend) -> None:
    done = conveyor(embedded, "doctor", CONVEYOR_DATABASE_URL="postgresql://u:hunter2@db:notaport/x")

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "CONVEYOR_DATABASE_URL" in done.stderr and "hunter2" not in done.stderr


@pytest.mark.parametrize("backend", ["redis", "rabbitmq"], indirect=True)
def test_a_running_worker_and_relay_are_seen(backend: Backend) -> None:
    _, found = doctor(backend)

    assert found["consumers"][0]["status"] == "ok", found["consumers"]
    assert found["relay"][0]["status"] == "ok" and found["database"][0]["status"] == "ok"


def dead_letter() -> DeadLetter:
    now = utcnow()
    return DeadLetter(
        message_id=uuid.uuid4().hex,
        queue="default",
        reason="permanent_error",
        error_type="PermanentError",
        error="planted",
        first_failed_at=now,
        last_failed_at=now,
        message={},
    )
