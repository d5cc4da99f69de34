"""Only the relay publishes; on PostgreSQL the outbox trigger wakes it, so it need not poll."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from jobs import service
from tests.support import Backend, wait_until

NEVER_MS = "600000"  # a poll interval the test would not outlive


@pytest.fixture(params=["rabbitmq", "redis"])
def polling_rarely(request: pytest.FixtureRequest, own_backend: Callable[..., Backend]) -> Backend:
    """A PostgreSQL backend whose relay polls only every ten minutes, once it is listening."""
    backend = own_backend(request.param, CONVEYOR_RELAY_INTERVAL_MS=NEVER_MS)
    backend.start_relay()
    wait_until(lambda: relay_is_listening(backend), 30, "the relay to listen for outbox notices")
    return backend


def relay_is_listening(backend: Backend) -> bool:
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query = 'LISTEN conveyor_outbox' AND state = 'idle'"
    )
    with backend.sessions() as session:
        return bool(session.scalar(waiting))


def test_a_submitted_job_is_published_at_once_not_at_the_next_poll(polling_rarely: Backend) -> None:
    with polling_rarely.sessions.begin() as session:
        submission = service.Submission(type="echo", payload={"n": 1})
        job = service.submit(session, polling_rarely.settings, submission)

    def published() -> bool:
        with polling_rarely.sessions() as session:
            return not service.is_unpublished(session, job.id)

    assert wait_until(published, 10, "the relay to publish the job")


def test_many_jobs_committed_together_are_all_published(polling_rarely: Backend) -> None:
    polling_rarely.start_worker()
    with polling_rarely.sessions.begin() as session:
        jobs = [
            service.submit(
                session, polling_rarely.settings, service.Submission(type="echo", payload={"n": n})
            )
            for n in range(700)  # more than one relay pass (500)
        ]

    for job in jobs:
        assert polling_rarely.wait_for_job(job.id, "succeeded", timeout=120).result == {"n": job.payload["n"]}
