"""Request ids and job log lines: X-Request-ID is taken or made, sent back, and becomes a job's
correlation id; a job's log lines carry its ids, as text or JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from jobs.observability.logs import JSON, TEXT, _Context, log_context
from tests.support import Backend, auth, submit_and_publish

ECHO = {"type": "echo", "payload": {"n": 1}}


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_request_id_is_taken_or_made_sent_back_and_names_the_jobs_correlation(
    backend: Backend, client: FlaskClient
) -> None:
    token = backend.token("jobs:write", "jobs:read")
    given = client.post("/v1/jobs", json=ECHO, headers=auth(token, **{"X-Request-ID": "req-42"}))
    assert given.headers["X-Request-ID"] == "req-42" and given.get_json()["correlation_id"] == "req-42"
    made = client.post("/v1/jobs", json=ECHO, headers=auth(token))
    assert (
        made.get_json()["correlation_id"] == made.headers["X-Request-ID"]
        and len(made.headers["X-Request-ID"]) == 32
    )
    own = client.post(
        "/v1/jobs", json={**ECHO, "correlation_id": "mine"}, headers=auth(token, **{"X-Request-ID": "r"})
    )
    assert own.get_json()["correlation_id"] == "mine"
    odd = client.get("/health/live", headers={"X-Request-ID": "no spaces or ünïcode"})
    assert odd.headers["X-Request-ID"] != "no spaces or ünïcode"


@pytest.mark.parametrize("form", ["json", "text"])
def test_a_jobs_log_lines_carry_its_ids(form: str) -> None:
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(JSON) if form == "json" else logging.Formatter(TEXT)
    record = logging.LogRecord("tasks.ocr", logging.INFO, __file__, 1, "page %d read", (3,), None)
    with log_context(job_id="j-1", type="ocr", attempt=2, correlation_id="req-42", causation_id=None):
        _Context().filter(record)
    line = formatter.format(record)
    if form == "json":
        fields = json.loads(line)
        assert (fields["message"], fields["job_id"], fields["type"], fields["attempt"]) == (
            "page 3 read",
            "j-1",
            "ocr",
            2,
        )
        assert fields["correlation_id"] == "req-42" and fields["causation_id"] is None
    else:
        assert line.endswith("page 3 read [job_id=j-1 type=ocr attempt=2 correlation_id=req-42]")


def test_a_workers_json_log_lines_carry_the_jobs_ids(own_backend: Callable[..., Backend]) -> None:
    backend = own_backend("embedded", CONVEYOR_LOG_FORMAT="json")
    backend.start_worker()
    job_id = submit_and_publish(backend, "fail", {"times": 1}, correlation_id="req-json-1", max_attempts=3)
    backend.start_relay()  # publishes the retry
    backend.wait_for_job(job_id, "succeeded", timeout=90)

    logs = [log.read_text() for log in backend.settings.data_dir.glob("*.log")]
    lines = [
        json.loads(line) for text in logs for line in text.splitlines() if line.startswith("{")
    ]  # no banner
    retried = [line for line in lines if line.get("job_id") == job_id and line["level"] == "WARNING"]
    assert retried, "no log line of the job's failed attempt carries its id"
    ids = (retried[0]["type"], retried[0]["attempt"], retried[0]["correlation_id"])
    assert ids == ("fail", 1, "req-json-1")
    assert "failed attempt 1 of 3" in retried[0]["message"]
