"""Worker-side dead-lettering: the raw message goes to its broker-side dead-letter queue.

The pool process decides that a message is dead and raises ``DeadLettered``; the worker's main
process, which holds the message as it arrived, publishes it byte for byte to ``<queue>.dead``
with the failure in ``x-conveyor-*`` headers, and only then acknowledges it. No database is needed
on this path, so a failure while PostgreSQL is down is kept by the broker until the relay indexes it.
"""

from __future__ import annotations

import logging
import traceback as traceback_module
import uuid
from datetime import datetime
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from celery.worker.request import Request
from celery.worker.state import task_ready
from kombu import Connection
from kombu.message import Message

from jobs import messages, service
from jobs.broker import is_rabbitmq
from jobs.broker.queues import dead_letter_queue
from jobs.models import utcnow

log = logging.getLogger(__name__)


class SentBack(Exception):
    """Raised in a pool process to have the main process put the message back on its queue as a
    new copy (the database is down, so nothing can be decided yet), then acknowledge it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (SentBack, self.args)


class DeadLettered(Exception):
    """Raised in a pool process to have the main process dead-letter the current message."""

    def __init__(self, info: dict[str, Any]):
        super().__init__(info.get("error", ""))
        self.info = info

    def __reduce__(self) -> tuple[Any, ...]:
        return (DeadLettered, (self.info,))


def failure_info(
    reason: str,
    error: BaseException | None = None,
    *,
    error_type: str | None = None,
    message: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The failure as ``x-conveyor-*`` header values (strings and ints only)."""
    info: dict[str, Any] = {
        "reason": reason,
        "error-type": error_type or (type(error).__name__ if error else "Error"),
        "error": messages.clip_error(message if message is not None else str(error)),
        "failed-at": utcnow().isoformat(),
    }
    if error is not None and error.__traceback__ is not None:
        info["traceback"] = messages.clip_traceback("".join(traceback_module.format_exception(error)))
    info.update({k.replace("_", "-"): _header_value(v) for k, v in extra.items() if v is not None})
    return info


def _header_value(value: Any) -> Any:
    return (
        value.isoformat() if isinstance(value, datetime) else value if isinstance(value, int) else str(value)
    )


def pool_process(hostname: str | None, pid: int | None) -> str:
    """A claim's ``worker``: the pool process, not only the node, so that when the process dies
    its worker releases its claims only, and a dead letter it sent names the same process."""
    return f"{hostname or '?'}/{pid}"


def publish_dead_letter(app: Any, message: Message, info: dict[str, Any]) -> str:
    """Put the message, unchanged but for failure headers, on ``<queue>.dead``; returns that queue."""
    queue = queue_of(message.delivery_info)
    target = dead_letter_queue(app.conf.broker_url, queue)
    failure_headers = messages.failure_headers({**info, "queue": queue})
    _publish_copy(app, message, target.exchange, target.name, failure_headers, [target], priority=False)
    return str(target.name)


def send_back(app: Any, message: Message) -> None:
    """Put the message back on its queue as a new copy: a requeue would count as a delivery on
    RabbitMQ, and a database failover of a minute would push a whole queue past its limit."""
    _publish_copy(app, message, "", queue_of(message.delivery_info), {}, [])


def _publish_copy(
    app: Any,
    message: Message,
    exchange: Any,
    routing_key: str,
    extra: dict[str, Any],
    declare: list[Any],
    *,
    priority: bool = True,
) -> None:
    """``priority``: keep the message's place among waiting jobs (dead letters have no order)."""
    kept = ("correlation_id", "reply_to", "priority") if priority else ("correlation_id", "reply_to")
    properties = {k: v for k, v in (message.properties or {}).items() if k in kept}
    with _confirming_connection(app) as connection:
        connection.Producer().publish(
            message.body,
            exchange=exchange,
            routing_key=routing_key,
            headers={**(message.headers or {}), **extra},
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            declare=declare,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            **properties,
        )


def _confirming_connection(app: Any) -> Connection:
    """The worker's own connection publishes events unconfirmed; a dead letter is published only
    on a connection where RabbitMQ confirms it, before the original message is acknowledged."""
    options = dict(app.conf.broker_transport_options or {})
    if is_rabbitmq(app.conf.broker_url):
        options["confirm_publish"] = True
    return Connection(app.conf.broker_url, transport=app.conf.broker_transport, transport_options=options)


def queue_of(delivery_info: dict[str, Any] | None, fallback: str = "default") -> str:
    info = delivery_info or {}
    return str(info.get("routing_key") or fallback).removesuffix(".dead")


class DeadLetteringRequest(Request):
    """Dead-letters on ``DeadLettered`` from the pool, and on a hard time limit."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, WorkerLostError | SystemExit):
            self._release_lease()
        if isinstance(exc, DeadLettered):
            return self._dead_letter(dict(exc.info))
        if isinstance(exc, SentBack):
            return self._send_back()
        if isinstance(exc, TimeLimitExceeded):
            # Called before Celery acknowledges a timed-out message, so the dead letter comes first.
            message = f"The job ran past its hard time limit of {exc.args[0] if exc.args else '?'} s."
            return self._dead_letter(failure_info("time_limit", exc, message=message, job_id=self._job_id()))
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _identity(self) -> str:
        return pool_process(self.hostname, self.worker_pid)

    def _release_lease(self) -> None:
        """The pool process running the job died; Celery now requeues its message, and the
        redelivery may claim the job at once (else it would wait for the lease to lapse)."""
        args = self.args or []
        try:
            with self.task.runtime.sessions.begin() as session:
                released = service.release_lease(
                    session, uuid.UUID(str(args[0])), int(args[1]), self._identity()
                )
            if released:
                log.warning(
                    "The process running task %s died; released its job's lease for the redelivery.", self.id
                )
        except Exception as exc:
            log.warning("Could not release the lease of task %s (%s); it lapses by itself.", self.id, exc)

    def _send_back(self) -> None:
        task_ready(self)
        try:
            send_back(self.task.app, self.message)
        except Exception:
            log.error("Could not send task %s back to its queue; requeueing it.", self.id, exc_info=True)
            self.reject(requeue=True)
            return
        self.acknowledge()

    def _job_id(self) -> str | None:
        args = self.args or []
        return str(args[0]) if args else None

    def _dead_letter(self, info: dict[str, Any]) -> None:
        task_ready(self)
        info.setdefault("worker", self._identity())
        try:
            dead = publish_dead_letter(self.task.app, self.message, info)
        except Exception:
            log.error("Could not dead-letter task %s; requeueing it.", self.id, exc_info=True)
            self.reject(requeue=True)
            return
        self.acknowledge()
        self.send_event("task-failed", exception=f"{info['error-type']}: {info['error']}", traceback="")
        log.warning(
            "Task %s (job %s) was dead-lettered to %s: %s.", self.id, info.get("job-id"), dead, info["reason"]
        )
