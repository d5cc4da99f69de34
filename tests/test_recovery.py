"""No job is silently lost: the relay resends jobs whose message the broker or a dead worker lost."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from jobs import service
from jobs.broker.config import transport_options
from jobs.models import Job, JobState, OutboxMessage, utcnow
from jobs.relay.outbox import publish_due
from jobs.relay.publisher import Publisher
from tests.support import Backend, submit_and_publish


def test_a_waiting_job_whose_message_was_lost_is_sent_again(own_backend: Callable[..., Backend]) -> None:
    backend = own_backend("embedded", CONVEYOR_REPUBLISH_AFTER_S="2")
    job_id = submit_and_publish(backend, "echo", {"n": 1}, no_relay=True)
    folder = Path(transport_options(backend.settings)["data_folder_in"])
    lost = list(folder.glob("*.default.msg"))
    assert len(lost) == 1
    lost[0].unlink()

    backend.start_worker()
    backend.start_relay()
    job = backend.wait_for_job(job_id, "succeeded", timeout=60)

    assert job.dispatch == 2
    assert job.attempts == 1


def test_a_running_job_whose_worker_vanished_is_sent_again_after_its_lease(
    own_backend: Callable[..., Backend],
) -> None:
    backend = own_backend("embedded")
    job_id = submit_and_publish(backend, "echo", {"n": 2}, no_relay=True)
    for path in Path(transport_options(backend.settings)["data_folder_in"]).glob("*.msg"):
        path.unlink()
    with backend.sessions.begin() as session:
        job = service.get(session, uuid.UUID(job_id), for_update=True)
        job.state, job.attempts, job.deliveries = JobState.RUNNING, 1, 1
        job.lease_expires_at = utcnow() - timedelta(hours=1)

    backend.start_worker()
    backend.start_relay()
    job = backend.wait_for_job(job_id, "succeeded", timeout=60)

    assert job.dispatch == 2
    assert (job.attempts, job.deliveries) == (2, 2)  # the lost delivery counts toward the limit


def test_a_job_published_long_after_it_was_due_counts_as_queued_from_its_publish(
    own_backend: Callable[..., Backend],
) -> None:
    backend = own_backend("embedded", CONVEYOR_REPUBLISH_AFTER_S="1800")
    with backend.sessions.begin() as session:
        job = service.submit(session, backend.settings, service.Submission("echo", {}))
        hours_ago = utcnow() - timedelta(hours=2)  # the broker was down for two hours
        session.execute(
            update(OutboxMessage).where(OutboxMessage.job_id == job.id).values(available_at=hours_ago)
        )
        session.execute(update(Job).where(Job.id == job.id).values(queued_at=hours_ago))

    assert publish_due(backend.sessions, Publisher(backend.settings)) == 1

    assert (backend.job(job.id).queued_at or hours_ago) > utcnow() - timedelta(minutes=1)
    with backend.sessions.begin() as session:
        assert service.unclaimed_jobs(session, timedelta(seconds=1800)) == []
