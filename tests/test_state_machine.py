"""The job state machine takes its allowed transitions and refuses the others, on SQLite and PostgreSQL.

``jobs.service`` is driven directly, with no worker and no broker, on a database the Alembic
migrations made. A refused transition leaves the job's row as it was, or raises.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from jobs import service
from jobs.db import Database
from jobs.errors import ConflictError, JobNotFoundError
from jobs.migrate import upgrade
from jobs.models import Job, JobState, OutboxMessage, utcnow
from jobs.settings import load_settings
from tests.services import HOW_TO_START, PG_ADMIN_URL, answers, fresh_postgres_database

LIMIT = 5  # deliveries of one attempt a test delivery accepts


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated database of the parameter's kind, dropped after the test."""
    environ = {"CONVEYOR_DATA_DIR": str(tmp_path)}
    name = None
    if request.param == "postgresql":
        if not answers("127.0.0.1", 5432):
            message = f"PostgreSQL did not answer on 127.0.0.1:5432; {HOW_TO_START}"
            pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
        name = f"conveyor_test_sm_{uuid.uuid4().hex[:8]}"
        environ["CONVEYOR_DATABASE_URL"] = fresh_postgres_database(name)
    db = Database(load_settings(environ))
    try:
        upgrade(db.settings)
        yield db
    finally:
        db.dispose()
        if name is not None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def claim(
    db: Database, job_id: uuid.UUID, dispatch: int = 1, limit: int = LIMIT, *, settle: bool = False
) -> service.Claim | None:
    """A worker's delivery: ``mark_started``, or with ``settle`` the ``settle_claim`` that follows it."""
    message = service.Delivery(job_id, dispatch, "w1", limit, timedelta(seconds=60))
    with db.sessions.begin() as session:
        return service.settle_claim(session, message) if settle else service.mark_started(session, message)


def submitted(db: Database, **options: Any) -> uuid.UUID:
    with db.sessions.begin() as session:
        return service.submit(session, db.settings, service.Submission("echo", {}, **options)).id


def running(db: Database, **options: Any) -> uuid.UUID:
    job_id = submitted(db, **options)
    assert claim(db, job_id) is not None
    return job_id


def fail(db: Database, job_id: uuid.UUID, *, retryable: bool = True) -> JobState:
    with db.sessions.begin() as session:
        job = service.get(session, job_id, for_update=True)
        return service.record_failure(session, db.settings, job, RuntimeError("x"), retryable=retryable)


def succeed(db: Database, job_id: uuid.UUID) -> None:
    with db.sessions.begin() as session:
        service.mark_succeeded(session, job_id, {"ok": True})


def cancel(db: Database, job_id: uuid.UUID) -> Job:
    with db.sessions.begin() as session:
        return service.cancel(session, job_id)


def load(db: Database, job_id: uuid.UUID) -> Job:
    with db.sessions() as session:
        return service.get(session, job_id)


def row(db: Database, job_id: uuid.UUID) -> dict[str, Any]:
    job = load(db, job_id)
    return {column.name: getattr(job, column.name) for column in Job.__table__.columns}


def outbox(db: Database, job_id: uuid.UUID) -> list[int]:
    """The dispatches of the job's outbox rows, oldest first."""
    with db.sessions() as session:
        query = select(OutboxMessage.dispatch).where(OutboxMessage.job_id == job_id)
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def in_state(db: Database, state: str) -> uuid.UUID:
    """A job driven to ``state`` by the service's own functions."""
    job_id = submitted(db) if state in (JobState.QUEUED, JobState.CANCELLED) else running(db)
    if state == JobState.CANCELLED:
        cancel(db, job_id)
    if state in (JobState.RETRYING, JobState.DEAD):
        fail(db, job_id, retryable=state == JobState.RETRYING)
    if state == JobState.SUCCEEDED:
        succeed(db, job_id)
    assert load(db, job_id).state == state
    return job_id


def transaction(db: Database, via: str) -> AbstractContextManager[Session | Connection]:
    """A transaction on a session, or on a bare connection as the workers' hot path uses."""
    return db.sessions.begin() if via == "session" else db.engine.begin()


def test_a_submitted_job_is_queued_at_dispatch_one_with_one_outbox_row(sessions: Database) -> None:
    job = load(sessions, submitted(sessions))
    assert (job.state, job.dispatch, job.attempts, job.deliveries) == (JobState.QUEUED, 1, 0, 0)
    assert outbox(sessions, job.id) == [1]


@pytest.mark.parametrize("via", ["session", "connection"])
def test_a_delivery_of_the_current_dispatch_starts_a_queued_job(sessions: Database, via: str) -> None:
    job_id = submitted(sessions)
    with transaction(sessions, via) as db:
        started = service.mark_started(db, service.Delivery(job_id, 1, "w1", LIMIT, timedelta(seconds=60)))
    assert started is not None
    assert (started.state, started.attempts, started.deliveries) == (JobState.RUNNING, 1, 1)
    job = load(sessions, job_id)
    assert (job.state, job.worker) == (JobState.RUNNING, "w1")
    assert job.lease_expires_at is not None and job.lease_expires_at > utcnow()


def test_a_redelivery_of_a_running_job_claims_it_again_and_counts_the_delivery(sessions: Database) -> None:
    job_id = running(sessions)
    again = claim(sessions, job_id)
    assert again is not None
    assert (again.state, again.deliveries, again.attempts) == (JobState.RUNNING, 2, 2)


@pytest.mark.parametrize("via", ["session", "connection"])
def test_a_running_job_succeeds_with_its_result(sessions: Database, via: str) -> None:
    job_id = running(sessions)
    with transaction(sessions, via) as db:
        service.mark_succeeded(db, job_id, {"n": 1})
    job = load(sessions, job_id)
    assert (job.state, job.result, job.progress) == (JobState.SUCCEEDED, {"n": 1}, 100)
    assert job.finished_at is not None and job.lease_expires_at is None


def test_a_retryable_failure_with_attempts_left_sends_the_job_again(sessions: Database) -> None:
    job_id = running(sessions)
    assert fail(sessions, job_id) == JobState.RETRYING
    job = load(sessions, job_id)
    assert (job.state, job.dispatch, job.deliveries) == (JobState.RETRYING, 2, 0)
    assert job.error_type == "RuntimeError" and job.next_retry_at is not None
    assert outbox(sessions, job_id) == [1, 2]


def test_a_retrying_job_starts_again_on_its_new_dispatch(sessions: Database) -> None:
    job_id = in_state(sessions, JobState.RETRYING)
    started = claim(sessions, job_id, dispatch=2)
    assert started is not None
    assert (started.state, started.attempts, started.deliveries) == (JobState.RUNNING, 2, 1)
    assert load(sessions, job_id).next_retry_at is None


@pytest.mark.parametrize(("max_attempts", "retryable"), [(1, True), (5, False)], ids=["last", "permanent"])
def test_a_failure_with_no_retry_left_is_dead(sessions: Database, max_attempts: int, retryable: bool) -> None:
    job_id = running(sessions, max_attempts=max_attempts)
    assert fail(sessions, job_id, retryable=retryable) == JobState.DEAD
    job = load(sessions, job_id)
    assert (job.state, job.attempts, job.dispatch, job.error_type) == (JobState.DEAD, 1, 1, "RuntimeError")
    assert job.finished_at is not None and outbox(sessions, job_id) == [1]


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RETRYING])
def test_cancelling_a_waiting_job_ends_it_and_drops_its_message(sessions: Database, state: str) -> None:
    job_id = in_state(sessions, state)
    assert cancel(sessions, job_id).state == JobState.CANCELLED
    job = load(sessions, job_id)
    assert job.state == JobState.CANCELLED and job.finished_at is not None
    assert outbox(sessions, job_id) == []


def test_a_running_job_asked_to_cancel_is_cancelled_at_its_next_delivery(sessions: Database) -> None:
    job_id = running(sessions)
    assert cancel(sessions, job_id).cancel_requested
    assert load(sessions, job_id).state == JobState.RUNNING
    assert claim(sessions, job_id) is None
    assert claim(sessions, job_id, settle=True) is None
    job = load(sessions, job_id)
    assert job.state == JobState.CANCELLED and job.finished_at is not None


@pytest.mark.parametrize("state", sorted(service.RETRYABLE_BY_HAND))
def test_a_retry_by_hand_queues_the_job_again_from_its_first_attempt(sessions: Database, state: str) -> None:
    job_id = in_state(sessions, state)
    with sessions.sessions.begin() as session:
        service.retry(session, job_id)
    job = load(sessions, job_id)
    assert (job.state, job.attempts, job.deliveries, job.dispatch) == (JobState.QUEUED, 0, 0, 2)
    assert (job.error_type, job.finished_at, job.cancel_requested) == (None, None, False)
    assert outbox(sessions, job_id)[-1] == 2


@pytest.mark.parametrize("limit", [LIMIT, 1])
def test_a_job_past_its_lease_is_sent_again_until_out_of_deliveries(sessions: Database, limit: int) -> None:
    state = JobState.RETRYING if limit > 1 else JobState.DEAD
    job_id = running(sessions)
    with sessions.sessions.begin() as session:
        service.get(session, job_id, for_update=True).lease_expires_at = utcnow() - timedelta(seconds=1)
        (lost,) = service.lost_jobs(session)
        assert lost.id == job_id
        assert service.recover_lost(session, lost, limit) == state
    job = load(sessions, job_id)
    assert (job.state, job.deliveries, job.lease_expires_at) == (state, 1, None)
    assert outbox(sessions, job_id) == ([1, 2] if state == JobState.RETRYING else [1])
    assert job.error_type == (None if state == JobState.RETRYING else "WorkerLostError")


def test_a_delivery_past_the_delivery_limit_is_settled_as_dead(sessions: Database) -> None:
    job_id = running(sessions)
    assert claim(sessions, job_id, limit=1) is None
    settled = claim(sessions, job_id, limit=1, settle=True)
    assert settled is not None
    assert (settled.state, settled.deliveries, settled.error_type) == (JobState.DEAD, 2, "WorkerLostError")
    assert load(sessions, job_id).state == JobState.DEAD


def redispatched(db: Database, state: str) -> uuid.UUID:
    """A claimable job in ``state`` on dispatch 2, so that a message of dispatch 1 is stale."""
    job_id = in_state(db, JobState.DEAD if state == JobState.QUEUED else JobState.RETRYING)
    if state == JobState.QUEUED:
        with db.sessions.begin() as session:
            service.retry(session, job_id)
    if state == JobState.RUNNING:
        assert claim(db, job_id, dispatch=2) is not None
    job = load(db, job_id)
    assert (job.state, job.dispatch) == (state, 2)
    return job_id


@pytest.mark.parametrize("state", sorted(service.CLAIMABLE))
def test_a_stale_dispatch_cannot_claim_the_job(sessions: Database, state: str) -> None:
    job_id = redispatched(sessions, state)
    before = row(sessions, job_id)
    assert claim(sessions, job_id, dispatch=1) is None
    assert claim(sessions, job_id, dispatch=1, settle=True) is None
    assert row(sessions, job_id) == before


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED])
def test_a_finished_job_cannot_be_claimed(sessions: Database, state: str) -> None:
    job_id = in_state(sessions, state)
    before = row(sessions, job_id)
    assert claim(sessions, job_id, dispatch=before["dispatch"]) is None
    assert claim(sessions, job_id, dispatch=before["dispatch"], settle=True) is None
    assert row(sessions, job_id) == before


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RETRYING, JobState.DEAD, JobState.CANCELLED])
def test_only_a_running_job_can_succeed(sessions: Database, state: str) -> None:
    job_id = in_state(sessions, state)
    before = row(sessions, job_id)
    succeed(sessions, job_id)
    assert row(sessions, job_id) == before


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED])
def test_a_finished_job_cannot_be_cancelled(sessions: Database, state: str) -> None:
    job_id = in_state(sessions, state)
    with pytest.raises(ConflictError):
        cancel(sessions, job_id)
    assert load(sessions, job_id).state == state


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING, JobState.RETRYING, JobState.SUCCEEDED])
def test_only_a_dead_or_cancelled_job_can_be_retried_by_hand(sessions: Database, state: str) -> None:
    job_id = in_state(sessions, state)
    before = row(sessions, job_id)
    with pytest.raises(ConflictError), sessions.sessions.begin() as session:
        service.retry(session, job_id)
    assert row(sessions, job_id) == before


def test_an_unknown_job_is_not_found(sessions: Database) -> None:
    with pytest.raises(JobNotFoundError), sessions.sessions() as session:
        service.get(session, uuid.uuid4())
