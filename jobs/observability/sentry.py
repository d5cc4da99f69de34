"""Error reporting to Sentry, only when ``CONVEYOR_SENTRY_DSN`` is set, and never with secrets.

Job payloads and results, request bodies, tokens, passwords, AWS keys and database URLs with a
password stay home: keys with such names are filtered wherever they appear in an event (frame
locals, request data, extra), and such values are filtered inside any string (a log message, an
exception's text).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import sentry_sdk

from jobs.observability.crons import Checkin
from jobs.settings import URL_PASSWORD, Settings

FILTERED = "[Filtered]"
SENSITIVE_KEYS = frozenset(
    {"payload", "result", "body", "data", "token", "dsn", "database_url", "broker_url", "flower_basic_auth"}
    | {"aws_secret_access_key", "aws_access_key_id", "secret_key", "access_key", "password", "secret"}
)
SECRET_VALUES = (
    (re.compile(r"cvr_[A-Za-z0-9_-]{16,}"), FILTERED),  # Conveyor API tokens
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), FILTERED),  # AWS access key ids
    (re.compile(r"(?i)(aws_secret_access_key\W+)[A-Za-z0-9/+=]{40}"), rf"\1{FILTERED}"),
    (URL_PASSWORD, rf"\1{FILTERED}@"),
    (re.compile(r"(?i)(bearer\s+)\S+"), rf"\1{FILTERED}"),
)


def init_sentry(settings: Settings, component: str) -> None:
    """Errors logged at ERROR, and uncaught in Flask or Celery, become events tagged with the
    process's component, the release and the environment (``jobs.observability.crons`` says why
    Celery's ``monitor_beat_tasks`` stays off)."""
    if not settings.sentry_dsn:
        return
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=settings.sentry_release or release(),
        environment=settings.sentry_environment,
        integrations=[FlaskIntegration(), CeleryIntegration(monitor_beat_tasks=False)],
        send_default_pii=False,
        max_request_body_size="never",
        event_scrubber=EventScrubber(denylist=[*DEFAULT_DENYLIST, *SENSITIVE_KEYS], recursive=True),
        before_send=scrub,
        before_breadcrumb=lambda crumb, _hint: scrub_value(crumb),
    )
    sentry_sdk.get_global_scope().set_tag("component", component)


def release() -> str:
    try:
        return f"conveyor@{version('conveyor')}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "conveyor@unknown"


@contextmanager
def job_scope(
    settings: Settings, job_id: uuid.UUID, job_type: str, claim: Any, sessions: Any
) -> Iterator[Checkin]:
    """Every event of a job's run carries its ids; yields the run's Crons check-in, begun.
    Without Sentry, nothing: a scope per job cost a fortieth of a short job's CPU."""
    if not sentry_sdk.is_initialized():
        yield Checkin(settings, job_id, job_type, claim, sessions)
        return
    with sentry_sdk.isolation_scope() as scope:
        ids = {"job_id": str(job_id), "job_type": job_type, "attempt": str(claim.attempts)}
        ids |= {"correlation_id": claim.correlation_id, "causation_id": claim.causation_id}
        scope.set_tags({name: value for name, value in ids.items() if value})
        checkin = Checkin(settings, job_id, job_type, claim, sessions)
        checkin.send("in_progress")
        yield checkin


def report_dead(dead: Any) -> None:
    """A dead-lettered job (``dead``: workers' DeadLettered), reported with the error that ended
    it, even when that error was already sent as a log line of its last attempt."""
    from sentry_sdk.integrations.dedupe import DedupeIntegration

    info = dead.info
    with sentry_sdk.new_scope() as scope:
        tags = {
            "dead_letter_reason": info.get("reason"),
            "job_id": info.get("job-id"),
            "job_type": info.get("job-type"),
        }
        scope.set_tags({name: value for name, value in tags.items() if value})
        DedupeIntegration.reset_last_seen()
        sentry_sdk.capture_exception(dead.__cause__ or dead.__context__ or dead)


def scrub(event: Any, _hint: Any) -> Any:
    """The event with every secret-looking string filtered (the scrubber filters by key)."""
    return scrub_value(event)


def scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        for pattern, replacement in SECRET_VALUES:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {key: FILTERED if _sensitive(key) else scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
    return value


def _sensitive(key: Any) -> bool:
    return isinstance(key, str) and key.lower() in SENSITIVE_KEYS
