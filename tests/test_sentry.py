"""What reaches Sentry, caught by a loopback server posing as it: an API error tagged with its
request id, a job's error tagged with the job's ids, each schedule's Crons check-ins, release and
environment on all, and none of the planted secrets."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobs.scheduler import operations
from tests.support import ROOT, Backend, submit_and_publish, wait_until

SECRETS = {
    "payload": "4111-1111-1111-1111",
    "token": "cvr_PlantedTokenThatMustNotLeak123",
    "password": "hunter2-planted",
    "aws": "AKIAPLANTEDKEY123456",
}
REPORTER = f"""
import logging, sentry_sdk
from jobs.observability import start_process
from jobs.settings import load_settings
import os
start_process("test", load_settings())

def run_job(payload, token):
    database_url = "postgresql://conveyor:{SECRETS["password"]}@db.internal/conveyor"
    aws = "{SECRETS["aws"]}"
    logging.getLogger("jobs").warning("Connecting to %s with %s", database_url, token)
    raise RuntimeError(f"PlantedError: {{database_url}} rejected {{token}} for {{aws}}")

try:
    run_job({{"card": "{SECRETS["payload"]}"}}, "{SECRETS["token"]}")
except RuntimeError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"""


class Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        Collector.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[str]:
    Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://public@127.0.0.1:{server.server_port}/1"
    finally:
        server.shutdown()


API_ERROR = """
from jobs.observability import start_process
from api import create_app
import sentry_sdk

app = create_app(start_process("api"))
app.add_url_rule("/boom", "boom", lambda: 1 / 0)
answer = app.test_client().get("/boom", headers={"X-Request-ID": "req-sentry-1"})
assert answer.status_code == 500, answer.status_code
sentry_sdk.flush(timeout=10)
"""


def items(kind: str) -> list[dict[str, Any]]:
    """The payloads of every envelope item of ``kind`` (``event``, ``check_in``) received."""
    found = []
    for body in Collector.received:
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == kind:
                found.append(json.loads(payload))
    return found


def run_script(script: str, dsn: str, data_dir: object) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CONVEYOR_SENTRY_DSN": dsn,
        "CONVEYOR_DATA_DIR": str(data_dir),
        "CONVEYOR_SENTRY_ENVIRONMENT": "ci",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_an_api_error_reaches_sentry_with_its_request_id_release_and_environment(
    sentry_server: str, tmp_path: object
) -> None:
    run_script(API_ERROR, sentry_server, tmp_path)

    (event,) = items("event")
    assert event["exception"]["values"][-1]["type"] == "ZeroDivisionError"
    assert event["tags"]["request_id"] == "req-sentry-1" and event["tags"]["component"] == "api"
    assert event["release"].startswith("conveyor@") and event["environment"] == "ci"


def test_a_dead_jobs_error_and_a_schedules_check_ins_reach_sentry_from_a_worker(
    sentry_server: str, own_backend: Callable[..., Backend]
) -> None:
    backend = own_backend("embedded", CONVEYOR_SENTRY_DSN=sentry_server, CONVEYOR_SENTRY_ENVIRONMENT="ci")
    backend.start_worker()
    backend.start_relay()
    with backend.sessions.begin() as session:
        fired = operations.run(session, backend.settings, "purge-idempotency-keys", "test")
    failing = submit_and_publish(backend, "fail", {"permanent": True, "message": "PlantedWorkerError"})
    backend.wait_for_job(fired["job_id"], "succeeded", timeout=90)
    backend.wait_for_job(failing, "dead", timeout=60)

    def checked_in() -> list[dict[str, Any]] | None:
        found = [c for c in items("check_in") if c["check_in_id"] == fired["job_id"].hex]
        return found if len(found) == 2 else None

    start, end = wait_until(checked_in, 30, "the schedule's two check-ins")
    assert (start["status"], end["status"]) == ("in_progress", "ok")
    assert start["monitor_slug"] == "conveyor-purge-idempotency-keys"
    assert start["monitor_config"]["schedule"] == {"type": "crontab", "value": "*/15 * * * *"}
    event = wait_until(
        lambda: next((e for e in items("event") if e["tags"].get("job_id") == failing), None), 30
    )
    assert event["exception"]["values"][-1]["type"] == "PermanentError"
    assert "PlantedWorkerError" in event["exception"]["values"][-1]["value"]
    assert event["tags"]["job_type"] == "fail" and event["tags"]["dead_letter_reason"] == "permanent_error"
    assert event["environment"] == "ci" and event["tags"]["component"] == "worker"


def test_a_job_only_claiming_a_schedule_checks_in_nowhere_and_a_crashing_job_is_reported(
    sentry_server: str, own_backend: Callable[..., Backend]
) -> None:
    backend = own_backend("embedded", CONVEYOR_SENTRY_DSN=sentry_server, CONVEYOR_DELIVERY_LIMIT="2")
    backend.start_worker()
    backend.start_relay()
    spoofed = submit_and_publish(
        backend, "purge-idempotency-keys", {}, correlation_id="schedule:purge-idempotency-keys"
    )
    crashing = submit_and_publish(backend, "crash", {})
    backend.wait_for_job(spoofed, "succeeded", timeout=90)
    backend.wait_for_job(crashing, "dead", timeout=90)

    def reported() -> dict[str, Any] | None:
        return next((e for e in items("event") if e["tags"].get("job_id") == crashing), None)

    event = wait_until(reported, 30, "the crashing job's event")
    assert event["tags"]["dead_letter_reason"] == "delivery_limit" and event["tags"]["job_type"] == "crash"
    assert not items("check_in"), "a job no schedule fired checked in"


def test_an_error_reported_to_sentry_carries_none_of_the_planted_secrets(
    sentry_server: str, tmp_path: object
) -> None:
    run_script(REPORTER, sentry_server, tmp_path)

    sent = b"".join(Collector.received).decode("utf-8", "replace")
    assert "PlantedError" in sent, "no event reached the server"
    assert "run_job" in sent, "the event lost its stack trace"
    leaked = [name for name, secret in SECRETS.items() if secret in sent]
    assert not leaked, f"{leaked} reached Sentry"
