"""The job state machine takes its allowed transitions and refuses the others, on SQLite and PostgreSQL.

``jobs.service`` is driven directly, with no worker and no broker, on a database the Alembic
migrations made. A refused transition leaves the job's row as it was, or raises.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from jobs import service
from jobs.db import Database
from jobs.errors import ConflictError, JobNotFoundError
from jobs.models import JobState, utcnow
from tests.state_helpers import (
    LIMIT,
    cancel,
    claim,
    fail,
    in_state,
    lapse,
    load,
    outbox,
    row,
    running,
    submitted,
    succeed,
    token_of,
    transaction,
)


def test_a_submitted_job_is_queued_at_dispatch_one_with_one_outbox_row(database: Database) -> None:
    job = load(database, submitted(database))
    assert (job.state, job.dispatch, job.attempts, job.deliveries) == (JobState.QUEUED, 1, 0, 0)
    assert outbox(database, job.id) == [1]


@pytest.mark.parametrize("via", ["session", "connection"])
def test_a_delivery_of_the_current_dispatch_starts_a_queued_job(database: Database, via: str) -> None:
    job_id = submitted(database)
    with transaction(database, via) as db:
        started = service.mark_started(db, service.Delivery(job_id, 1, "w1", LIMIT, timedelta(seconds=60)))
    assert started is not None
    assert (started.state, started.attempts, started.deliveries) == (JobState.RUNNING, 1, 1)
    job = load(database, job_id)
    assert (job.state, job.worker) == (JobState.RUNNING, "w1")
    assert job.lease_expires_at is not None and job.lease_expires_at > utcnow()


def test_a_redelivery_of_a_job_whose_lease_lapsed_claims_it_again_and_counts_the_delivery(
    database: Database,
) -> None:
    job_id = running(database)
    lapse(database, job_id)
    again = claim(database, job_id)
    assert again is not None
    assert (again.state, again.deliveries, again.attempts) == (JobState.RUNNING, 2, 2)


def test_a_redelivery_of_a_job_under_a_live_lease_is_skipped(database: Database) -> None:
    job_id = running(database)
    before = row(database, job_id)
    assert claim(database, job_id) is None
    assert claim(database, job_id, settle=True) is None
    assert row(database, job_id) == before


def test_a_renewed_lease_keeps_the_claim_and_a_replaced_claim_cannot_renew(database: Database) -> None:
    job_id = running(database)
    stale = token_of(database, job_id)
    with database.sessions.begin() as session:
        assert service.renew_lease(session, job_id, stale, timedelta(seconds=60)) is False
    lapse(database, job_id)
    assert claim(database, job_id) is not None
    with database.sessions.begin() as session:
        assert service.renew_lease(session, job_id, stale, timedelta(seconds=60)) is None


@pytest.mark.parametrize("via", ["session", "connection"])
def test_a_running_job_succeeds_with_its_result(database: Database, via: str) -> None:
    job_id = running(database)
    token = token_of(database, job_id)
    with transaction(database, via) as db:
        service.mark_succeeded(db, job_id, token, {"n": 1})
    job = load(database, job_id)
    assert (job.state, job.result, job.progress) == (JobState.SUCCEEDED, {"n": 1}, 100)
    assert job.finished_at is not None and job.lease_expires_at is None


def test_a_retryable_failure_with_attempts_left_sends_the_job_again(database: Database) -> None:
    job_id = running(database)
    assert fail(database, job_id) == JobState.RETRYING
    job = load(database, job_id)
    assert (job.state, job.dispatch, job.deliveries) == (JobState.RETRYING, 2, 0)
    assert job.error_type == "RuntimeError" and job.next_retry_at is not None
    assert outbox(database, job_id) == [1, 2]


def test_a_retrying_job_starts_again_on_its_new_dispatch(database: Database) -> None:
    job_id = in_state(database, JobState.RETRYING)
    started = claim(database, job_id, dispatch=2)
    assert started is not None
    assert (started.state, started.attempts, started.deliveries) == (JobState.RUNNING, 2, 1)
    assert load(database, job_id).next_retry_at is None


@pytest.mark.parametrize(("max_attempts", "retryable"), [(1, True), (5, False)], ids=["last", "permanent"])
def test_a_failure_with_no_retry_left_is_dead(database: Database, max_attempts: int, retryable: bool) -> None:
    job_id = running(database, max_attempts=max_attempts)
    assert fail(database, job_id, retryable=retryable) == JobState.DEAD
    job = load(database, job_id)
    assert (job.state, job.attempts, job.dispatch, job.error_type) == (JobState.DEAD, 1, 1, "RuntimeError")
    assert job.finished_at is not None and outbox(database, job_id) == [1]


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RETRYING])
def test_cancelling_a_waiting_job_ends_it_and_drops_its_message(database: Database, state: str) -> None:
    job_id = in_state(database, state)
    assert cancel(database, job_id).state == JobState.CANCELLED
    job = load(database, job_id)
    assert job.state == JobState.CANCELLED and job.finished_at is not None
    assert outbox(database, job_id) == []


def test_a_running_job_asked_to_cancel_is_cancelled_at_its_next_delivery(database: Database) -> None:
    job_id = running(database)
    assert cancel(database, job_id).cancel_requested
    assert load(database, job_id).state == JobState.RUNNING
    assert claim(database, job_id, settle=True) is None  # its worker is alive and will stop it
    assert load(database, job_id).state == JobState.RUNNING
    lapse(database, job_id)
    assert claim(database, job_id) is None
    assert claim(database, job_id, settle=True) is None
    job = load(database, job_id)
    assert job.state == JobState.CANCELLED and job.finished_at is not None


@pytest.mark.parametrize("state", sorted(service.RETRYABLE_BY_HAND))
def test_a_retry_by_hand_queues_the_job_again_from_its_first_attempt(database: Database, state: str) -> None:
    job_id = in_state(database, state)
    with database.sessions.begin() as session:
        service.retry(session, job_id)
    job = load(database, job_id)
    assert (job.state, job.attempts, job.deliveries, job.dispatch) == (JobState.QUEUED, 0, 0, 2)
    assert (job.error_type, job.finished_at, job.cancel_requested) == (None, None, False)
    assert outbox(database, job_id)[-1] == 2


@pytest.mark.parametrize("limit", [LIMIT, 1])
def test_a_job_past_its_lease_is_sent_again_until_out_of_deliveries(database: Database, limit: int) -> None:
    state = JobState.RETRYING if limit > 1 else JobState.DEAD
    job_id = running(database)
    with database.sessions.begin() as session:
        service.get(session, job_id, for_update=True).lease_expires_at = utcnow() - timedelta(hours=1)
        (lost,) = service.lost_jobs(session, timedelta(seconds=30))
        assert lost.id == job_id
        assert service.recover_lost(session, lost, limit) == state
    job = load(database, job_id)
    assert (job.state, job.deliveries, job.lease_expires_at) == (state, 1, None)
    assert outbox(database, job_id) == ([1, 2] if state == JobState.RETRYING else [1])
    assert job.error_type == (None if state == JobState.RETRYING else "WorkerLostError")


def test_a_delivery_past_the_delivery_limit_is_settled_as_dead(database: Database) -> None:
    job_id = running(database)
    lapse(database, job_id)
    assert claim(database, job_id, limit=1) is None
    settled = claim(database, job_id, limit=1, settle=True)
    assert settled is not None
    assert (settled.state, settled.deliveries, settled.error_type) == (JobState.DEAD, 2, "WorkerLostError")
    assert load(database, job_id).state == JobState.DEAD


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
def test_a_stale_dispatch_cannot_claim_the_job(database: Database, state: str) -> None:
    job_id = redispatched(database, state)
    before = row(database, job_id)
    assert claim(database, job_id, dispatch=1) is None
    assert claim(database, job_id, dispatch=1, settle=True) is None
    assert row(database, job_id) == before


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED])
def test_a_finished_job_cannot_be_claimed(database: Database, state: str) -> None:
    job_id = in_state(database, state)
    before = row(database, job_id)
    assert claim(database, job_id, dispatch=before["dispatch"]) is None
    assert claim(database, job_id, dispatch=before["dispatch"], settle=True) is None
    assert row(database, job_id) == before


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RETRYING, JobState.DEAD, JobState.CANCELLED])
def test_only_a_running_job_can_succeed(database: Database, state: str) -> None:
    job_id = in_state(database, state)
    before = row(database, job_id)
    succeed(database, job_id)
    assert row(database, job_id) == before


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED])
def test_a_finished_job_cannot_be_cancelled(database: Database, state: str) -> None:
    job_id = in_state(database, state)
    with pytest.raises(ConflictError):
        cancel(database, job_id)
    assert load(database, job_id).state == state


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING, JobState.RETRYING, JobState.SUCCEEDED])
def test_only_a_dead_or_cancelled_job_can_be_retried_by_hand(database: Database, state: str) -> None:
    job_id = in_state(database, state)
    before = row(database, job_id)
    with pytest.raises(ConflictError), database.sessions.begin() as session:
        service.retry(session, job_id)
    assert row(database, job_id) == before


def test_an_unknown_job_is_not_found(database: Database) -> None:
    with pytest.raises(JobNotFoundError), database.sessions() as session:
        service.get(session, uuid.uuid4())
