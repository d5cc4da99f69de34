"""A job's transitions after its claim: failure and retry, death, cancellation, requeue, resend."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from jobs import messages
from jobs.audit import audit
from jobs.errors import ConflictError
from jobs.models import FINISHED_STATES, Job, JobState, OutboxMessage, utcnow
from jobs.service.queries import get, is_cancel_requested
from jobs.service.submission import enqueue
from jobs.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_BY_HAND = frozenset({JobState.DEAD, JobState.CANCELLED})
CLAIMABLE = frozenset({JobState.QUEUED, JobState.RETRYING, JobState.RUNNING})
UNFINISHED = [state for state in JobState if state not in FINISHED_STATES]


def send_again(session: Session, job: Job) -> None:
    """A new dispatch of a waiting job; a late copy of the old message is then skipped as stale."""
    job.dispatch += 1
    enqueue(session, job)


def recover_lost(session: Session, job: Job, delivery_limit: int) -> JobState:
    """Send a lost job again as a new dispatch (a stale copy is skipped), or give up on it."""
    if job.deliveries >= delivery_limit:
        mark_dead(
            job, "WorkerLostError", f"The job's worker was lost {job.deliveries} times while running it."
        )
        return JobState.DEAD
    job.state = JobState.RETRYING
    job.lease_expires_at = None
    send_again(session, job)
    return JobState.RETRYING


def holds_claim(job: Job, token: str, what: str) -> bool:
    """Whether ``token`` is the claim the running job is under; if not, says the write is ignored."""
    if job.state == JobState.RUNNING and job.claim_token == token:
        return True
    log.info(
        "Ignoring the %s of job %s: its claim is no longer current (the job is %s).", what, job.id, job.state
    )
    return False


def mark_cancelled(session: Session, job: Job, token: str) -> bool:
    """A running job whose handler stopped because it was asked to; False if the claim is stale."""
    if not holds_claim(job, token, "cancellation"):
        return False
    finish(job, JobState.CANCELLED)
    return True


def record_failure(
    session: Session,
    settings: Settings,
    job: Job,
    error: BaseException,
    *,
    token: str,
    retryable: bool,
    delay_ms: int | None = None,
) -> JobState | None:
    """Retry with backoff while attempts remain, else the job is dead; returns the new state, or
    None (nothing written) when the claim ``token`` names is no longer the job's."""
    if not holds_claim(job, token, "failure"):
        return None
    job.error_type = type(error).__name__
    job.error_message = messages.clip_error(str(error))
    job.first_failed_at = job.first_failed_at or utcnow()
    if not retryable or job.attempts >= job.max_attempts:
        mark_dead(job, job.error_type, job.error_message)
        return JobState.DEAD
    delay = delay_ms if delay_ms is not None else backoff_ms(settings, job.attempts)
    job.state = JobState.RETRYING
    job.dispatch += 1
    job.deliveries = 0
    job.next_retry_at = utcnow() + timedelta(milliseconds=delay)
    enqueue(session, job, available_at=job.next_retry_at)
    return JobState.RETRYING


def mark_dead(job: Job, error_type: str, error: str) -> None:
    """The job's message is (or is on its way to) a dead-letter queue."""
    job.error_type, job.error_message = messages.safe_text(error_type)[:200], messages.clip_error(error)
    job.first_failed_at = job.first_failed_at or utcnow()
    finish(job, JobState.DEAD)


def backoff_ms(settings: Settings, attempts: int) -> int:
    """Exponential backoff with jitter: a random delay in [d/2, d], d doubling per attempt."""
    ceiling = min(settings.retry_backoff_max_ms, settings.retry_backoff_ms * 2 ** (attempts - 1))
    return random.randint(ceiling // 2, ceiling)


def cancel(session: Session, job_id: uuid.UUID, *, actor: str) -> Job:
    """Cancel a waiting job at once; ask a running one to stop at its next check. A parent
    waiting for its children takes those that have not started with it. Audited."""
    job = get(session, job_id, for_update=True)
    if job.state in FINISHED_STATES:
        raise ConflictError(f"Job {job_id} is already {job.state}.")
    audit(session, None, actor, "job-cancel", None, {"job_id": str(job_id), "state": str(job.state)})
    if job.state == JobState.WAITING:
        children = select(Job).where(Job.parent_id == job.id, Job.state.in_(UNFINISHED))
        for child in session.scalars(children.with_for_update()):
            _stop(session, child)
    _stop(session, job)
    return job


def _stop(session: Session, job: Job) -> None:
    if job.state == JobState.RUNNING:
        job.cancel_requested = True
    else:
        finish(job, JobState.CANCELLED)
        session.execute(delete(OutboxMessage).where(OutboxMessage.job_id == job.id))


def retry(session: Session, job_id: uuid.UUID) -> Job:
    """Run a dead or cancelled job again from its first attempt."""
    job = get(session, job_id, for_update=True)
    if job.state not in RETRYABLE_BY_HAND:
        raise ConflictError(f"Job {job_id} is {job.state}; only dead or cancelled jobs retry.")
    requeue(session, job)
    return job


def requeue(session: Session, job: Job) -> None:
    """Queue the job again as a new dispatch whose attempts start from zero; a parent's dead
    and cancelled children with it (its run finds them unfinished and waits for them)."""
    if job.state not in RETRYABLE_BY_HAND:
        raise ConflictError(f"Job {job.id} is {job.state}; only dead or cancelled jobs requeue.")
    failed = select(Job).where(Job.parent_id == job.id, Job.state.in_(RETRYABLE_BY_HAND))
    for child in session.scalars(failed.with_for_update()):
        requeue(session, child)
    job.state = JobState.QUEUED
    job.attempts = job.deliveries = 0
    job.dispatch += 1
    job.cancel_requested = False
    job.result = job.error_type = job.error_message = None
    job.started_at = job.finished_at = job.next_retry_at = job.first_failed_at = None
    job.lease_expires_at = job.requeued_from = job.claim_token = None
    job.progress, job.progress_message = 0, None
    enqueue(session, job)


def report_progress(
    session: Session, job_id: uuid.UUID, token: str, percent: int, message: str | None
) -> bool:
    """Record progress; returns whether the handler should stop: cancellation was asked for, or
    its claim is no longer the job's."""
    recorded = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING, Job.claim_token == token)
        .values(progress=max(0, min(100, percent)), progress_message=(message or "")[:200] or None)
    )
    if not cast(CursorResult[Any], recorded).rowcount:
        log.info("Job %s lost its claim while running; its handler is asked to stop.", job_id)
        return True
    return is_cancel_requested(session, job_id)


def finish(job: Job, state: JobState) -> None:
    job.state = state
    job.finished_at = utcnow()
    job.next_retry_at = job.lease_expires_at = None
