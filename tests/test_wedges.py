"""One row or message that cannot be handled is set aside, and everything behind it keeps flowing:
the outbox relay, the recovery sweep and the dead-letter indexer, on every backend."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from kombu import Connection
from sqlalchemy import delete, update

from jobs import service
from jobs.broker.config import transport_options
from jobs.broker.queues import dead_letter_queue
from jobs.models import Job, JobState, OutboxMessage, utcnow
from tests.capture_helpers import celery_headers, dead_letter_of_job, dead_letter_of_message
from tests.support import Backend, submit


def submitted(backend: Backend, job_type: str = "echo", **options: Any) -> str:
    """A job written as the API writes it; ``job_type`` may be one a later release retired."""
    with backend.sessions.begin() as session:
        job = service.submit(session, backend.settings, service.Submission("echo", {"n": 1}, **options))
        session.execute(update(Job).where(Job.id == job.id).values(type=job_type))
    return str(job.id)


def test_a_job_of_a_retired_type_is_dead_lettered_and_the_jobs_behind_it_still_run(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    retired = submitted(backend, "retired")
    after = submit(client, writer, "echo", {"after": "retired"})

    assert backend.wait_for_job(after, "succeeded", timeout=60).result == {"after": "retired"}
    job = backend.wait_for_job(retired, "dead", timeout=30)
    assert job.error_type == "UnroutableJobError"
    assert "'retired'" in (job.error_message or "")
    letter = dead_letter_of_job(backend, retired, timeout=30)
    assert (letter.reason, letter.type, letter.task_name) == ("unroutable", "retired", None)


def lost(backend: Backend, job_id: str) -> None:
    """The job's worker died mid-run and its message is gone: only the sweep can find it."""
    with backend.sessions.begin() as session:
        session.execute(delete(OutboxMessage).where(OutboxMessage.job_id == uuid.UUID(job_id)))
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job_id))
            .values(
                state=JobState.RUNNING, attempts=1, deliveries=1, lease_expires_at=utcnow() - timedelta(1)
            )
        )


def test_the_recovery_sweep_recovers_lost_jobs_beside_one_it_cannot_send(backend: Backend) -> None:
    later = utcnow() + timedelta(days=1)  # so that the relay does not publish them first
    retired, kept = submitted(backend, "retired", run_at=later), submitted(backend, run_at=later)
    lost(backend, retired)
    lost(backend, kept)

    assert backend.wait_for_job(kept, "succeeded", timeout=60).result == {"n": 1}
    assert backend.wait_for_job(retired, "dead", timeout=30).error_type == "UnroutableJobError"


def publish_dead_letter(backend: Backend, message_id: str, **failure: str) -> None:
    """Put a message on ``default.dead`` as a worker would, with the failure headers given."""
    settings = backend.settings
    target = dead_letter_queue(settings.broker_url, "default")
    headers = {**celery_headers("conveyor.nope", message_id), **failure}
    with Connection(settings.broker_url, transport_options=transport_options(settings)) as connection:
        connection.Producer().publish(
            b"[[], {}, {}]",
            exchange=target.exchange,
            routing_key=target.name,
            headers=headers,
            content_type="application/json",
            content_encoding="utf-8",
            declare=[target],
        )


def test_dead_letters_the_database_refuses_as_they_came_are_stored_and_the_rest_indexed(
    backend: Backend,
) -> None:
    nul, unreadable, plain = (str(uuid.uuid4()) for _ in range(3))
    reason = {"x-conveyor-reason": "permanent_error"}
    publish_dead_letter(
        backend, nul, **reason, **{"x-conveyor-error": "a\x00b", "x-conveyor-error-type": "E" * 300}
    )
    publish_dead_letter(backend, unreadable, **reason, **{"x-conveyor-attempts": "many"})
    publish_dead_letter(backend, plain, **reason, **{"x-conveyor-error": "plain"})

    assert dead_letter_of_message(backend, plain).error == "plain"
    stored = dead_letter_of_message(backend, nul)
    assert (stored.error, stored.error_type) == ("a\ufffdb", "E" * 200)
    bare = dead_letter_of_message(backend, unreadable)
    assert "stored without its headers" in bare.error and "many" in bare.error
    assert bare.message["headers"]["id"] == unreadable
