"""Each job has exactly one recorded outcome: a write from a claim that a later delivery replaced
changes nothing, on SQLite and PostgreSQL.

Two deliveries of one dispatch (a relay commit lost after the broker confirmed, a broker
redelivery) both claim the job: worker A first, then worker B. Whatever A writes afterwards is
stale. A dead letter indexed late is fenced by its dispatch.
"""

from __future__ import annotations

import uuid

import pytest

from jobs import dead_letters, messages, service
from jobs.db import Database
from jobs.models import JobState
from tests.state_helpers import claim, fail, lapse, load, outbox, running, submitted, succeed, token_of


def claimed_twice(db: Database) -> tuple[uuid.UUID, str, str]:
    """A running job, with worker A's claim and then worker B's, of the same dispatch."""
    job_id = running(db)
    stale = token_of(db, job_id)
    lapse(db, job_id)  # A stopped renewing it (a long pause, a partition), so B could claim
    assert claim(db, job_id) is not None
    current = token_of(db, job_id)
    assert stale != current
    return job_id, stale, current


@pytest.mark.parametrize("retryable", [True, False], ids=["retryable", "permanent"])
def test_a_stale_failure_after_the_current_claim_succeeded_changes_nothing(
    database: Database, retryable: bool
) -> None:
    job_id, stale, current = claimed_twice(database)
    assert succeed(database, job_id, current)

    assert fail(database, job_id, retryable=retryable, token=stale) is None

    job = load(database, job_id)
    assert (job.state, job.result, job.error_type) == (JobState.SUCCEEDED, {"ok": True}, None)
    assert outbox(database, job_id) == [1]


def test_a_stale_success_is_ignored_and_the_current_claim_records_the_outcome(database: Database) -> None:
    job_id, stale, current = claimed_twice(database)

    assert not succeed(database, job_id, stale)
    assert load(database, job_id).state == JobState.RUNNING
    assert fail(database, job_id, token=current) == JobState.RETRYING

    job = load(database, job_id)
    assert (job.state, job.dispatch, job.result) == (JobState.RETRYING, 2, None)


def test_a_stale_claim_can_neither_cancel_nor_report_progress_and_is_told_to_stop(database: Database) -> None:
    job_id, stale, current = claimed_twice(database)

    with database.sessions.begin() as session:
        assert service.report_progress(session, job_id, stale, 50, "halfway") is True
        assert not service.mark_cancelled(session, service.get(session, job_id, for_update=True), stale)
    with database.sessions.begin() as session:
        assert service.report_progress(session, job_id, current, 10, "mine") is False

    job = load(database, job_id)
    assert (job.state, job.progress, job.progress_message) == (JobState.RUNNING, 10, "mine")


def letter_of(job_id: uuid.UUID, dispatch: int, worker: str | None = "w1") -> dead_letters.Failure:
    """A time-limit dead letter, as the main process of ``worker`` (the claim helpers' ``w1``) sends it."""
    message_id = messages.task_id(job_id, dispatch)
    return dead_letters.Failure(
        message_id=message_id,
        queue="default",
        reason="time_limit",
        error_type="TimeLimitExceeded",
        error="late",
        message={"headers": {"id": message_id}},
        job_id=job_id,
        worker=worker,
    )


def test_a_late_dead_letter_of_an_old_dispatch_leaves_the_newer_run_alone(database: Database) -> None:
    job_id = running(database)
    assert fail(database, job_id, retryable=False) == JobState.DEAD
    with database.sessions.begin() as session:
        service.retry(session, job_id)
    assert claim(database, job_id, dispatch=2) is not None

    with database.sessions.begin() as session:
        stored = dead_letters.index(session, letter_of(job_id, 1))

    assert stored is not None
    assert load(database, job_id).state == JobState.RUNNING
    assert succeed(database, job_id)
    assert load(database, job_id).state == JobState.SUCCEEDED


def test_a_dead_letter_of_the_current_dispatch_ends_the_job(database: Database) -> None:
    job_id = running(database)

    with database.sessions.begin() as session:
        dead_letters.index(session, letter_of(job_id, 1))

    job = load(database, job_id)
    assert (job.state, job.error_type) == (JobState.DEAD, "TimeLimitExceeded")


@pytest.mark.parametrize("worker", ["another-worker/1", None], ids=["another-worker", "the-broker"])
def test_a_dead_letter_from_elsewhere_leaves_a_job_a_live_claim_runs(
    database: Database, worker: str | None
) -> None:
    job_id = running(database)

    with database.sessions.begin() as session:
        dead_letters.index(session, letter_of(job_id, 1, worker))

    assert load(database, job_id).state == JobState.RUNNING


def test_a_finished_job_is_never_claimed_again_by_a_late_delivery(database: Database) -> None:
    job_id = submitted(database)
    assert claim(database, job_id) is not None
    assert succeed(database, job_id)

    assert claim(database, job_id) is None
    assert claim(database, job_id, settle=True) is None
    assert load(database, job_id).state == JobState.SUCCEEDED
