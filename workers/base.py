"""The one task class that drives a job's lifecycle; handlers hold business logic only."""

from __future__ import annotations

import logging
import time
import uuid
from functools import cached_property
from typing import Any

from celery import Task
from sqlalchemy.orm import Session, sessionmaker

from jobs import service
from jobs.db import make_engine, make_sessionmaker
from jobs.models import Job, JobState
from jobs.settings import Settings
from tasks import Handler
from tasks.context import JobContext
from tasks.errors import JobCancelledError, PermanentError, RetryableError

log = logging.getLogger(__name__)


class Runtime:
    """Per-process resources; built lazily so each forked pool process opens its own connections."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(make_engine(self.settings))


class JobTask(Task):
    """Claims the job, runs the handler, and records the outcome on the job row.

    Outcomes: success; ``PermanentError`` or an invalid payload fails at once; anything else is
    retried with backoff (through the outbox, so a retry survives any worker or broker restart)
    until ``max_attempts``, then fails.
    """

    runtime: Runtime
    handler: Handler
    job_type: str
    typing = False

    def run(self, job_id: str, dispatch: int) -> None:
        jid = uuid.UUID(job_id)
        with self.runtime.sessions.begin() as session:
            job = service.mark_started(session, jid, dispatch, self.request.hostname or "?")
            if job is None:
                return
            payload, attempt = job.payload, job.attempts
        log.info("Job %s (%s) started, attempt %d.", job_id, self.job_type, attempt)
        started = time.monotonic()
        ctx = JobContext(job_id=jid, attempt=attempt, report=lambda p, m: self._report(jid, p, m))
        try:
            loaded = service.validate_payload(self.job_type, payload)
            result = self.handler(loaded, ctx)
        except JobCancelledError:
            self._finish(jid, lambda s, j: service.mark_cancelled(s, j))
            log.info("Job %s was cancelled while running.", job_id)
        except (PermanentError, service.InvalidJobError) as exc:
            self._fail(jid, exc, retryable=False)
        except RetryableError as exc:
            self._fail(jid, exc, retryable=True, delay_ms=exc.delay_ms)
        except Exception as exc:
            log.error("Job %s raised an unexpected error.", job_id, exc_info=True)
            self._fail(jid, exc, retryable=True)
        else:
            self._finish(jid, lambda s, j: service.mark_succeeded(s, j, result))
            log.info("Job %s succeeded in %.0f ms.", job_id, (time.monotonic() - started) * 1000)

    def _report(self, job_id: uuid.UUID, percent: int, message: str | None) -> bool:
        with self.runtime.sessions.begin() as session:
            return service.report_progress(session, job_id, percent, message)

    def _finish(self, job_id: uuid.UUID, change: Any) -> None:
        with self.runtime.sessions.begin() as session:
            job: Job = service.get(session, job_id, for_update=True)
            change(session, job)

    def _fail(
        self, job_id: uuid.UUID, exc: Exception, *, retryable: bool, delay_ms: int | None = None
    ) -> None:
        with self.runtime.sessions.begin() as session:
            job = service.get(session, job_id, for_update=True)
            state = service.record_failure(
                session, self.runtime.settings, job, exc, retryable=retryable, delay_ms=delay_ms
            )
            attempts, max_attempts, retry_at = job.attempts, job.max_attempts, job.next_retry_at
        if state == JobState.RETRYING:
            log.warning(
                "Job %s failed attempt %d of %d (%s: %s); retrying at %s.",
                job_id,
                attempts,
                max_attempts,
                type(exc).__name__,
                exc,
                retry_at,
            )
        else:
            log.info("Job %s failed for good after %d attempts: %s.", job_id, attempts, exc)
