"""A job's life on each backend: submit over HTTP, run on a real worker, read the outcome."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy import select

from jobs.models import DeadLetter
from tests.support import Backend, auth, submit, wait_until


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


def test_a_nul_byte_in_a_permanent_error_is_stored_safely_and_the_job_is_dead_lettered(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job_id = submit(client, writer, "fail", {"permanent": True, "message": "bad \u0000 byte"})

    job = backend.wait_for_job(job_id, "dead")

    assert (job.error_type, job.error_message) == ("PermanentError", "bad \ufffd byte")
    letter = wait_until(lambda: letters_of(backend, job_id), 60, f"the dead letter of job {job_id}")
    assert letter[0].error == "bad \ufffd byte"


def letters_of(backend: Backend, job_id: str) -> list[DeadLetter]:
    with backend.sessions() as session:
        return list(session.scalars(select(DeadLetter).where(DeadLetter.job_id == uuid.UUID(job_id))))
