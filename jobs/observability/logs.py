"""Log lines as full sentences, with the process and logger that wrote them, as text or as JSON
(``CONVEYOR_LOG_FORMAT``, python-json-logger). A line written while a job runs carries the job's
id, type, attempt, correlation and causation ids; one written for an HTTP request, its request id.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from jobs.settings import Settings

FIELDS = ("job_id", "type", "attempt", "correlation_id", "causation_id", "request_id")
TEXT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s%(context)s"
JSON = " ".join(f"%({name})s" for name in ("asctime", "levelname", "processName", "name", "message", *FIELDS))
_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("conveyor_log", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside, in this thread or task, carries ``fields``."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def job_log_context(job_id: Any, job_type: str, claim: Any) -> Any:
    """The context of a job's run: ``claim`` is the worker's (jobs.service.Claim)."""
    return log_context(
        job_id=str(job_id),
        type=job_type,
        attempt=claim.attempts,
        correlation_id=claim.correlation_id,
        causation_id=claim.causation_id,
    )


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        fields = _CONTEXT.get() or {}
        for name in FIELDS:
            setattr(record, name, fields.get(name))
        shown = " ".join(f"{name}={fields[name]}" for name in FIELDS if fields.get(name) is not None)
        record.context = f" [{shown}]" if shown else ""
        return True


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_Context())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(JSON, rename_fields={"asctime": "time", "levelname": "level"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
