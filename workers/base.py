"""The one task class that drives a job's lifecycle; handlers hold business logic only."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NoReturn

from celery import Task
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs import service
from jobs.catalogue import validate_payload
from jobs.db import is_outage
from jobs.errors import InvalidInputError, JobNotFoundError
from jobs.models import DeadLetter, JobState
from jobs.observability.crons import Checkin
from jobs.observability.logs import job_log_context
from jobs.observability.sentry import job_scope, report_dead
from jobs.storage import Storage, StorageError
from jobs.storage.inputs import resolve_input
from tasks import Handler
from tasks.context import JobContext
from tasks.errors import FanOut, JobCancelledError, PermanentError, RetryableError
from workers import families
from workers.dead_letters import DeadLettered, SentBack, failure_info, pool_process
from workers.runtime import Runtime

log = logging.getLogger(__name__)

DATABASE_DOWN_PAUSE_S = 2.0


def unstorable(result: Any) -> str | None:
    """Why a handler's result cannot be stored as JSON on every database, or None. PostgreSQL
    refuses NaN and Infinity, SQLite would store them as JSON no reader accepts."""
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"The job's result cannot be stored as JSON: {exc}."
    return None


class JobTask(Task):
    """Claims the job, runs the handler, and records the outcome on the job row.

    Success is recorded; ``PermanentError`` or an invalid payload dead-letters at once; anything
    else is retried with backoff (through the outbox, so a retry survives any worker or broker
    restart) until ``max_attempts``, then dead-lettered. A message that keeps killing its worker
    is dead-lettered after ``CONVEYOR_DELIVERY_LIMIT`` deliveries. With the database down nothing
    is decided that needs it: the message is requeued, or dead-lettered to the broker if the
    outcome is already known.
    """

    runtime: Runtime
    handler: Handler
    job_type: str
    typing = False
    throws = (DeadLettered, SentBack)
    Request = "workers.dead_letters:DeadLetteringRequest"

    def run(self, job_id: Any, dispatch: Any) -> None:
        try:
            jid = self._parse(job_id, dispatch)
            claim = self._claim(jid, int(dispatch))
        except DeadLettered as dead:  # a message that keeps killing its worker, or no job's
            report_dead(dead)
            raise
        if claim is None:
            return
        # Debug: Celery already logs each task's receipt and success, task id = job id + dispatch.
        log.debug("Job %s (%s) started, attempt %d.", jid, self.job_type, claim.attempts)
        token = claim.token
        with (
            job_log_context(jid, self.job_type, claim),
            job_scope(self.runtime.settings, jid, self.job_type, claim, self.runtime.sessions) as checkin,
            self.runtime.heartbeat.hold(jid, token) as held,
        ):
            ctx = JobContext(
                job_id=jid,
                attempt=claim.attempts,
                delivery=claim.deliveries,
                report=lambda p, m: self._report(jid, claim, p, m) or held.should_stop(),
                settings=self.runtime.settings,
                resolve=self._resolve,
                sessions=self.runtime.sessions,
                children=lambda: families.children(self.runtime.sessions, jid),
            )
            try:
                self._run_reported(jid, claim, ctx, checkin)
            finally:
                families.release_parent(self.runtime.sessions, claim.parent_id)

    def _run_reported(self, jid: uuid.UUID, claim: service.Claim, ctx: JobContext, checkin: Checkin) -> None:
        """Run the job, and tell Sentry how it ended: a dead letter with its error, a scheduled
        job's outcome as its check-in."""
        try:
            ended = self._run_handler(jid, claim, claim.token, ctx)
        except DeadLettered as dead:
            report_dead(dead)
            checkin.ended(JobState.DEAD)
            raise
        checkin.ended(ended)

    def _run_handler(
        self, jid: uuid.UUID, claim: service.Claim, token: str, ctx: JobContext
    ) -> JobState | None:
        """Run the handler and record its outcome under the claim ``token``; the job's state
        when that ended it (a dead letter is raised)."""
        started = time.monotonic()
        try:
            loaded = validate_payload(self.job_type, claim.payload, self.runtime.settings)
            result = self.handler(loaded, ctx)
        except FanOut as fan_out:
            wanted = fan_out.children
            self._record(jid, lambda s: families.fan_out(s, self.runtime.settings, jid, token, wanted))
        except JobCancelledError:
            self._record(
                jid, lambda s: service.mark_cancelled(s, service.get(s, jid, for_update=True), token)
            )
            log.info("Job %s stopped while running.", jid)
            return JobState.CANCELLED
        except (PermanentError, InvalidInputError) as exc:
            self._fail(jid, claim, exc, retryable=False)
        except RetryableError as exc:
            self._fail(jid, claim, exc, retryable=True, delay_ms=exc.delay_ms)
        except StorageError as exc:
            self._fail(jid, claim, exc, retryable=exc.retriable)
        except Exception as exc:
            log.error("Job %s raised an unexpected error.", jid, exc_info=True)
            self._fail(jid, claim, exc, retryable=True)
        else:
            problem = unstorable(result)
            if problem is not None:
                self._fail(jid, claim, PermanentError(problem), retryable=False)
                return None
            self._record(
                jid, lambda db: service.mark_succeeded(db, jid, token, result), self.runtime.statement
            )
            log.debug("Job %s succeeded in %.0f ms.", jid, (time.monotonic() - started) * 1000)
            return JobState.SUCCEEDED
        return None

    def _parse(self, job_id: Any, dispatch: Any) -> uuid.UUID:
        try:
            int(dispatch)
            return uuid.UUID(str(job_id))
        except (TypeError, ValueError) as exc:
            message = f"The message's arguments ({job_id!r}, {dispatch!r}) are not a job id and a dispatch."
            raise DeadLettered(failure_info("invalid_message", exc, message=message)) from None

    def _claim(self, job_id: uuid.UUID, dispatch: int) -> service.Claim | None:
        settings = self.runtime.settings
        lease = timedelta(seconds=settings.lease_s)
        worker = pool_process(self.request.hostname, os.getpid())
        delivery = service.Delivery(job_id, dispatch, worker, settings.delivery_limit, lease)
        try:
            with self.runtime.statement() as connection:
                claim = service.mark_started(connection, delivery)
            if claim is None:
                with self.runtime.sessions.begin() as session:
                    claim = service.settle_claim(session, delivery)
                    if claim is None:
                        self._dead_letter_again_if_lost(session, job_id, dispatch)
                        return None
        except JobNotFoundError as exc:
            raise DeadLettered(failure_info("job_not_found", exc, job_id=job_id)) from None
        except Exception as exc:
            self._database_failed(job_id, exc)
        if claim.state == JobState.DEAD:
            info = failure_info(
                "delivery_limit", error_type=claim.error_type, message=claim.error_message or ""
            )
            raise DeadLettered(self._with_job(info, job_id, claim))
        return claim

    def _dead_letter_again_if_lost(self, session: Session, job_id: uuid.UUID, dispatch: int) -> None:
        """A dead job whose message was never dead-lettered: its worker died in between."""
        job = service.get(session, job_id)
        if job.state != JobState.DEAD or job.dispatch != dispatch:
            return
        known = session.scalar(select(DeadLetter.id).where(DeadLetter.message_id == self.request.id))
        if known is None:
            info = failure_info(
                "lost_dead_letter", error_type=job.error_type, message=job.error_message or ""
            )
            raise DeadLettered({**info, "job-id": str(job_id), "job-type": self.job_type})

    def _database_failed(self, job_id: uuid.UUID, exc: Exception) -> NoReturn:
        """An outage requeues the message to wait it out; any other error is this job's own
        (data the database refuses) and dead-letters it, naming the error."""
        if is_outage(exc):
            self._requeue_while_database_is_down(job_id, exc)
        log.error("The database refused a write for job %s.", job_id, exc_info=exc)
        message = f"The database refused the job's write: {type(exc).__name__}: {exc}"
        raise DeadLettered({**failure_info("database_error", exc, message=message), "job-id": str(job_id)})

    def _requeue_while_database_is_down(self, job_id: uuid.UUID, exc: Exception) -> NoReturn:
        log.warning("Database unavailable for job %s (%s); sending its message back.", job_id, exc)
        time.sleep(DATABASE_DOWN_PAUSE_S)
        raise SentBack(str(exc))

    def _resolve(self, ref: Mapping[str, Any]) -> tuple[Storage, str]:
        with self.runtime.sessions() as session:
            return resolve_input(ref, self.runtime.settings, session)

    def _report(self, job_id: uuid.UUID, claim: service.Claim, percent: int, message: str | None) -> bool:
        with self.runtime.sessions.begin() as session:
            stop = service.report_progress(session, job_id, claim.token, percent, message)
        families.report_to_parent(self.runtime.sessions, claim.parent_id)
        return stop

    def _record(self, job_id: uuid.UUID, change: Any, scope: Any = None) -> None:
        """Run ``change`` in ``scope`` (a session transaction unless given); with the database
        down, requeue the message."""
        try:
            with (scope or self.runtime.sessions.begin)() as db:
                change(db)
        except Exception as exc:
            self._database_failed(job_id, exc)

    def _fail(
        self,
        job_id: uuid.UUID,
        claim: service.Claim,
        exc: Exception,
        *,
        retryable: bool,
        delay_ms: int | None = None,
    ) -> None:
        exhausted = not retryable or claim.attempts >= claim.max_attempts
        try:
            with self.runtime.sessions.begin() as session:
                job = service.get(session, job_id, for_update=True)
                state = service.record_failure(
                    session,
                    self.runtime.settings,
                    job,
                    exc,
                    token=claim.token,
                    retryable=retryable,
                    delay_ms=delay_ms,
                )
                retry_at = job.next_retry_at
        except Exception as db_error:
            if not exhausted or not is_outage(db_error):
                self._database_failed(job_id, db_error)
            state = JobState.DEAD
        if state is None:
            return
        if state == JobState.RETRYING:
            log.warning(
                "Job %s failed attempt %d of %d (%s: %s); retrying at %s.",
                *(job_id, claim.attempts, claim.max_attempts, type(exc).__name__, exc, retry_at),
            )
            return
        reason = "retries_exhausted" if retryable else "permanent_error"
        raise DeadLettered(self._with_job(failure_info(reason, exc), job_id, claim))

    def _with_job(self, info: dict[str, Any], job_id: uuid.UUID, claim: service.Claim) -> dict[str, Any]:
        first = claim.first_failed_at.isoformat() if claim.first_failed_at else info["failed-at"]
        return {
            **info,
            "job-id": str(job_id),
            "job-type": self.job_type,
            "attempts": claim.attempts,
            "first-failed-at": first,
        }
