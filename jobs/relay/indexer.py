"""The dead-letter indexer: moves messages from the broker-side dead-letter queues into PostgreSQL.

A message is acknowledged only after its dead letter is committed, so with the database down it
stays in its queue; indexing is idempotent by message id, so a redelivery is stored once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from kombu import Connection
from kombu.message import Message
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from jobs import dead_letters, messages
from jobs.broker.config import connection as broker_connection
from jobs.broker.queues import dead_letter_queues
from jobs.catalogue import TYPE_OF_TASK
from jobs.db import is_outage
from jobs.models import DeadLetter
from jobs.relay.loop import Duty, run_until
from jobs.settings import Settings

log = logging.getLogger(__name__)

BATCH = 100


def failure_from_message(message: Message, dead_queue: str) -> dead_letters.Failure:
    """Read a dead-lettered message: our worker's ``x-conveyor-*`` headers, or RabbitMQ's x-death."""
    headers: dict[str, Any] = dict(message.headers or {})
    ours = messages.read_failure_headers(headers)
    task_name = headers.get("task")
    queue = str(ours.get("queue") or _first_death(headers).get("queue") or dead_queue.removesuffix(".dead"))
    job_id = ours.get("job-id") or (_first_arg(message.body) if task_name in TYPE_OF_TASK else None)
    death = _first_death(headers)
    original = {
        "exchange": death.get("exchange", queue) if death else queue,
        "routing_key": (death.get("routing-keys") or [queue])[0] if death else queue,
    }
    reason, error_type, error = _why(ours, headers)
    return dead_letters.Failure(
        message_id=_message_id(message, headers),
        queue=queue,
        reason=str(reason),
        error_type=str(error_type),
        error=str(error),
        message=messages.capture(
            message.body,
            headers,
            message.properties,
            original,
            message.content_type,
            message.content_encoding,
            queue,
        ),
        job_id=_uuid(job_id),
        type=ours.get("job-type") or TYPE_OF_TASK.get(str(task_name)),
        task_name=str(task_name) if task_name else None,
        traceback=ours.get("traceback"),
        attempts=int(ours.get("attempts") or 0),
        worker=ours.get("worker"),
        first_failed_at=_time(ours.get("first-failed-at")),
        last_failed_at=_time(ours.get("failed-at")) or _time(_first_death(headers).get("time")),
    )


def _why(ours: dict[str, Any], headers: dict[str, Any]) -> tuple[str, str, str]:
    """Our worker's reason, or else the broker's: a message past RabbitMQ's delivery limit."""
    if ours.get("reason"):
        return ours["reason"], ours.get("error-type", "Error"), ours.get("error", "")
    count = headers.get("x-delivery-count") or _first_death(headers).get("count", "?")
    error = f"The broker dead-lettered the message after {count} deliveries: its worker kept dying."
    return "delivery_limit", "DeliveryLimitExceeded", error


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death") or []
    return dict(deaths[0]) if deaths else {}


def _message_id(message: Message, headers: dict[str, Any]) -> str:
    found = headers.get("id") or (message.properties or {}).get("correlation_id")
    if found:
        return str(found)
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return (
        "sha256:"
        + hashlib.sha256(body + json.dumps(headers, default=str, sort_keys=True).encode()).hexdigest()
    )


def _first_arg(body: Any) -> str | None:
    try:
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def index_available(connection: Connection, settings: Settings, sessions: sessionmaker[Session]) -> int:
    """Index up to a batch from each dead-letter queue; returns how many messages were handled."""
    with sessions() as session:
        # Touch no message while the database is down: each return would count as a delivery.
        session.execute(text("SELECT 1"))
    handled = 0
    channel = connection.default_channel
    for queue in dead_letter_queues(settings):
        bound = queue.bind(channel)
        bound.declare()
        for _ in range(BATCH):
            message = bound.get(no_ack=False)
            if message is None:
                break
            try:
                stored = index_one(sessions, message, queue.name)
            except Exception:
                message.requeue()
                raise
            message.ack()
            handled += 1
            if stored is not None:
                log.info("Indexed dead letter %s from %s (job %s).", stored.id, queue.name, stored.job_id)
    return handled


def index_one(sessions: sessionmaker[Session], message: Message, dead_queue: str) -> DeadLetter | None:
    """Store one dead letter. One that cannot be stored as it came (headers the database refuses)
    is stored with its body only, so it never blocks the letters behind it; an outage raises."""
    failure = _read(message, dead_queue)
    try:
        return _store(sessions, failure)
    except Exception as exc:
        if is_outage(exc):
            raise
        log.error(
            "Dead letter %s cannot be stored as it came (%s); storing its body only.", failure.message_id, exc
        )
        return _store(sessions, _bare(message, failure, f"{type(exc).__name__}: {exc}"))


def _store(sessions: sessionmaker[Session], failure: dead_letters.Failure) -> DeadLetter | None:
    with sessions.begin() as session:
        return dead_letters.index(session, failure)


def _read(message: Message, dead_queue: str) -> dead_letters.Failure:
    try:
        return failure_from_message(message, dead_queue)
    except Exception as exc:
        log.error("A dead letter on %s has headers that cannot be read (%s).", dead_queue, exc)
        empty = dead_letters.Failure("", dead_queue.removesuffix(".dead"), "unreadable", "", "", {})
        return _bare(message, empty, f"{type(exc).__name__}: {exc}")


def _bare(message: Message, failure: dead_letters.Failure, problem: str) -> dead_letters.Failure:
    """The failure without what could not be read or stored: the body, the id, and why."""
    headers = dict(message.headers or {}) if isinstance(message.headers, dict) else {}
    message_id = failure.message_id or _message_id(message, headers)
    captured = messages.capture(
        message.body, {"id": message_id}, {}, None, message.content_type, None, failure.queue
    )
    return replace(
        failure,
        message_id=message_id,
        error_type=failure.error_type or "UnreadableDeadLetterError",
        error=messages.clip_error(f"{failure.error} [stored without its headers: {problem}]".strip()),
        message={**captured, "headers": {"id": message_id, "task": str(headers.get("task"))}},
        traceback=None,
    )


def run_indexer(settings: Settings, sessions: sessionmaker[Session], stop: threading.Event) -> None:
    """Index dead letters until ``stop`` is set; waits out broker and database outages."""
    interval = settings.relay_interval_ms / 1000
    held: list[Connection] = []

    def step() -> None:
        if not held:
            held.append(broker_connection(settings))
        try:
            handled = index_available(held[0], settings, sessions)
        except Exception:
            held.pop().release()
            raise
        if not handled:
            stop.wait(interval)

    log.info("Dead-letter indexer started.")
    run_until(stop, Duty("Dead-letter indexer", ("index", "indexing"), step, interval))
    for connection in held:
        connection.release()
