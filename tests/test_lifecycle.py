"""A job's life on each backend: submit over HTTP, run on a real worker, read the outcome."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support import Backend, auth, submit


def test_echo_job_succeeds_with_its_payload_as_result(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job_id = submit(client, writer, "echo", {"greeting": "hello", "n": 3})

    backend.wait_for_job(job_id, "succeeded")

    body = client.get(f"/v1/jobs/{job_id}", headers=auth(writer)).get_json()
    assert body["state"] == "succeeded"
    assert body["result"] == {"greeting": "hello", "n": 3}
    assert body["attempts"] == 1
    assert body["started_at"] and body["finished_at"]
    assert body["progress"]["percent"] == 100


def test_job_is_retried_then_succeeds(backend: Backend, client: FlaskClient, writer: str) -> None:
    job_id = submit(client, writer, "fail", {"times": 2}, max_attempts=5)

    job = backend.wait_for_job(job_id, "succeeded")

    assert job.attempts == 3
    assert job.result == {"failed_times": 2}
    assert job.error_type is None


def test_job_fails_when_retries_are_exhausted(backend: Backend, client: FlaskClient, writer: str) -> None:
    job_id = submit(client, writer, "fail", {"times": 10}, max_attempts=3)

    job = backend.wait_for_job(job_id, "dead")

    assert job.attempts == 3
    assert job.error_type == "RetryableError"
