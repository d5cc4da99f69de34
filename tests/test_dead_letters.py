"""Every failure that retries cannot fix becomes a dead letter an operator can see and requeue."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient

from jobs.models import DeadLetter
from tests.support import Backend, submit, wait_until


def dead_letter_of(backend: Backend, job_id: str) -> DeadLetter:
    def find() -> DeadLetter | None:
        with backend.sessions() as session:
            return session.query(DeadLetter).filter(DeadLetter.job_id == uuid.UUID(job_id)).one_or_none()

    return wait_until(find, 60, f"a dead letter for job {job_id}")


def test_permanent_error_is_dead_lettered_at_once(backend: Backend, client: FlaskClient, writer: str) -> None:
    job_id = submit(client, writer, "fail", {"permanent": True, "message": "bad input"}, max_attempts=5)

    letter = dead_letter_of(backend, job_id)

    assert letter.reason == "permanent_error"
    assert letter.error_type == "PermanentError"
    assert letter.error == "bad input"
    assert letter.attempts == 1
    assert letter.type == "fail"
    assert letter.queue == "default"
    assert letter.task_name == "conveyor.diagnostics.fail"
    assert "PermanentError" in (letter.traceback or "")
    assert letter.worker and letter.worker.startswith("test-")
    assert letter.message["headers"]["id"] == f"{job_id}.1"
    assert backend.wait_for_job(job_id, "dead").attempts == 1


def test_exhausted_retries_make_the_job_dead(backend: Backend, client: FlaskClient, writer: str) -> None:
    job_id = submit(client, writer, "fail", {"times": 10}, max_attempts=3)

    letter = dead_letter_of(backend, job_id)

    assert letter.reason == "retries_exhausted"
    assert letter.error_type == "RetryableError"
    assert letter.attempts == 3
    assert letter.first_failed_at < letter.last_failed_at
    assert backend.wait_for_job(job_id, "dead").attempts == 3


def test_message_that_keeps_killing_its_worker_is_dead_lettered(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job_id = submit(client, writer, "crash", {})

    letter = dead_letter_of(backend, job_id)

    assert letter.reason in {"delivery_limit", "worker_lost"}
    assert backend.wait_for_job(job_id, "dead").state == "dead"
    after = submit(client, writer, "echo", {"still": "up"})
    assert backend.wait_for_job(after, "succeeded").result == {"still": "up"}


def test_crash_on_first_delivery_is_redelivered_and_succeeds(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job_id = submit(client, writer, "crash", {"times": 1})

    job = backend.wait_for_job(job_id, "succeeded")

    assert job.result == {"crashed_times": 1}
    assert job.deliveries == 2
