"""Publishing: outbox rows become broker messages, exactly one publish per row.

Whoever changes a job's state writes its outbox row in the same transaction (``jobs.service``);
only the relay publishes. It claims rows by deleting them in the transaction that publishes them,
so a row is published once unless the process dies between the publish and the commit; the
worker then sees a stale dispatch or a finished job and skips the copy. On PostgreSQL a trigger
(migration 0003) notifies the relay of every outbox insert, so it publishes within milliseconds
and in batches under load; on SQLite it polls every ``CONVEYOR_RELAY_INTERVAL_MS``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu import Producer
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from jobs import dead_letters, service
from jobs.broker import celery_config, is_rabbitmq, transport_options
from jobs.db import is_postgresql
from jobs.filesystem_transport import prune_abandoned_queues
from jobs.messages import decode_body
from jobs.models import Job, OutboxMessage, utcnow
from jobs.settings import Settings
from jobs.types import JOB_TYPES

log = logging.getLogger(__name__)

RECOVERY_INTERVAL_S = 10.0
BATCH_SIZE = 500
# Under load, passes closer together than this publish a handful of rows each and cost a
# transaction and a confirm wait apiece; a job submitted to an idle relay is not delayed by it.
MIN_PASS_GAP_S = 0.05
PERSISTENT_DELIVERY_MODE = 2


class Publisher:
    """Sends job messages (the job id and its dispatch number, never the payload) in batches.

    On RabbitMQ a batch is published on a channel in confirm mode and ``batch`` returns only once
    the broker has confirmed every message: one wait per batch, not one per message.
    """

    CONFIRM_TIMEOUT_S = 30.0

    def __init__(self, settings: Settings):
        self.celery = Celery("conveyor-publisher", set_as_current=False)
        self.celery.config_from_object(celery_config(settings, confirm_publish=False))
        self.confirms = is_rabbitmq(settings.broker_url)
        self.producer: Producer | None = None
        self.sent = 0
        self.unconfirmed: set[int] = set()
        self.refused = 0
        self.declared: set[str] = set()
        self.origin = anon_nodename()

    @contextmanager
    def batch(self) -> Iterator[None]:
        try:
            yield
            self._wait_for_confirms()
        except BaseException:
            self.close_connection()
            raise

    def publish(self, job_id: uuid.UUID, job_type: str, queue: str, priority: int, dispatch: int) -> None:
        """Celery's own task message, handed to kombu directly: ``send_task`` would also route
        it, send signals and merge retry policies, which cost the relay a third of its CPU."""
        task_id = f"{job_id}.{dispatch}"
        message = self.celery.amqp.as_task_v2(
            task_id,
            JOB_TYPES[job_type].task_name,
            args=[str(job_id), dispatch],
            argsrepr=f"('{job_id}', {dispatch})",
            kwargsrepr="{}",
            origin=self.origin,
            root_id=task_id,
            reply_to=self.celery.thread_oid,
        )
        self._producer().publish(
            message.body,
            exchange="",
            routing_key=queue,
            serializer="json",
            headers=message.headers,
            delivery_mode=PERSISTENT_DELIVERY_MODE,
            priority=priority,
            retry=False,
            # Declared once per channel, so that a queue nobody declared yet cannot drop it.
            declare=[] if queue in self.declared else [self.celery.amqp.queues[queue]],
            **message.properties,
        )
        self.declared.add(queue)
        self._sent()

    def publish_raw(self, message: dict[str, Any]) -> None:
        """Send a captured message again exactly as it was first sent (see dead_letters)."""
        self._producer().publish(
            decode_body(message),
            exchange=message.get("exchange") or "",
            routing_key=message.get("routing_key") or message.get("queue") or "",
            headers=message.get("headers") or {},
            content_type=message.get("content_type") or "application/octet-stream",
            content_encoding=message.get("content_encoding") or "binary",
            retry=False,
            **message.get("properties", {}),
        )
        self._sent()

    def _producer(self) -> Producer:
        if self.producer is None:
            channel = self.celery.connection_for_write().channel()
            if self.confirms:
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
            self.producer = Producer(channel)
            self.sent = 0
            self.declared.clear()
        return self.producer

    def _sent(self) -> None:
        self.sent += 1  # RabbitMQ numbers a confirm channel's messages 1, 2, 3...
        if self.confirms:
            self.unconfirmed.add(self.sent)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed = {tag for tag in self.unconfirmed if tag > delivery_tag}
        else:
            self.unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.refused += 1
        self._on_ack(delivery_tag, multiple)

    def _wait_for_confirms(self) -> None:
        deadline = time.monotonic() + self.CONFIRM_TIMEOUT_S
        while self.unconfirmed and self.producer is not None:
            self.producer.connection.drain_events(timeout=max(0.0, deadline - time.monotonic()))
        if self.refused:
            raise PublishRefusedError(f"The broker refused {self.refused} messages.")

    def close_connection(self) -> None:
        if self.producer is not None:
            self.producer.connection.close()
        self.producer = None
        self.unconfirmed.clear()
        self.refused = 0

    def close(self) -> None:
        self.close_connection()
        self.celery.close()


class PublishRefusedError(RuntimeError):
    """RabbitMQ answered a publish with a negative confirm (a full queue, an internal error)."""


def publish_due(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    *,
    job_ids: Iterable[uuid.UUID] | None = None,
    limit: int = BATCH_SIZE,
) -> int:
    """Claim due outbox rows, publish them, and commit; returns how many were published.

    A publish error rolls the claim back, leaving the rows for the next try.
    """
    with sessions.begin() as session:
        _commit_without_flush_wait(session)
        due = (
            select(OutboxMessage.id)
            .where(OutboxMessage.available_at <= utcnow())
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if job_ids is not None:
            due = due.where(OutboxMessage.job_id.in_(list(job_ids)))
        if is_postgresql(session):
            due = due.with_for_update(skip_locked=True)
        claimed = session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.id.in_(due.scalar_subquery()))
            .returning(OutboxMessage.job_id, OutboxMessage.dispatch, OutboxMessage.raw)
        ).all()
        ids = [job_id for job_id, _, _ in claimed if job_id is not None]
        routes = select(Job.id, Job.type, Job.queue, Job.priority).where(Job.id.in_(ids))
        jobs = {row.id: row for row in session.execute(routes)} if ids else {}
        with publisher.batch():
            for job_id, dispatch, raw in claimed:
                if job_id is not None:
                    job = jobs[job_id]
                    publisher.publish(job_id, job.type, job.queue, job.priority, dispatch)
                elif raw is not None:
                    publisher.publish_raw(raw)
    return len(claimed)


def _commit_without_flush_wait(session: Session) -> None:
    """A claim lost in a database crash only publishes its message once more, which workers
    tolerate (see the module docstring), so its commit need not wait for the disk."""
    if is_postgresql(session):
        session.execute(text("SET LOCAL synchronous_commit = off"))


class Wakeup:
    """The relay's pause between passes, cut short on PostgreSQL by the outbox trigger's notice."""

    CHANNEL = "conveyor_outbox"

    def __init__(self, engine: Engine, stop: threading.Event):
        self.engine = engine
        self.stop = stop
        self.listener: Any = None

    def wait(self, timeout: float, last_pass: float) -> None:
        """Until a notice or ``timeout``, but no sooner than ``MIN_PASS_GAP_S`` after ``last_pass``."""
        if self.engine.dialect.name != "postgresql":
            self.stop.wait(timeout)
            return
        try:
            listener = self._listener()
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                pass
            self.stop.wait(max(0.0, last_pass + MIN_PASS_GAP_S - time.monotonic()))
            for _ in listener.notifies(timeout=0):
                pass  # notices that came meanwhile: the next pass publishes their rows too
        except Exception as exc:
            if self.listener is not None:
                log.warning("Relay stopped listening for outbox notices (%s); polling instead.", exc)
            self.close()
            self.stop.wait(timeout)

    def _listener(self) -> Any:
        if self.listener is None:
            connection = self.engine.raw_connection()
            connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            connection.driver_connection.execute(f"LISTEN {self.CHANNEL}")  # type: ignore[union-attr]
            self.listener = connection
        return self.listener.driver_connection

    def close(self) -> None:
        if self.listener is not None:
            self.listener.invalidate()
            self.listener = None


def sweep(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """The relay's periodic duties: resend jobs whose message may be gone (running ones whose
    worker vanished, waiting ones no worker claimed for ``CONVEYOR_REPUBLISH_AFTER_S``), and on
    the embedded broker drop event and reply queues nobody consumes any more."""
    with sessions.begin() as session:
        recovered = dead_letters.recover_lost_jobs(session, settings.delivery_limit)
        unclaimed = service.unclaimed_jobs(session, timedelta(seconds=settings.republish_after_s))
        for job in unclaimed:
            service.send_again(session, job)
    if settings.is_embedded_broker:
        folders = transport_options(settings)
        pruned = prune_abandoned_queues(Path(folders["data_folder_in"]), Path(folders["control_folder"]))
        if pruned:
            log.info("Removed %d event or reply queues whose consumer went away.", pruned)
    if recovered:
        log.warning("Recovered %d running jobs whose worker was lost.", recovered)
    if unclaimed:
        log.warning("Sent %d waiting jobs again: no worker claimed them in time.", len(unclaimed))


def run_relay(settings: Settings, sessions: sessionmaker[Session], stop: threading.Event) -> None:
    """Publish due outbox rows until ``stop`` is set; survives broker and database outages."""
    publisher = Publisher(settings)
    wakeup = Wakeup(sessions.kw["bind"], stop)
    interval = settings.relay_interval_ms / 1000
    failing = False
    next_recovery = 0.0
    log.info(
        "Outbox relay started; it looks for due messages at least every %d ms.", settings.relay_interval_ms
    )
    while not stop.is_set():
        try:
            if time.monotonic() >= next_recovery:
                sweep(settings, sessions)
                next_recovery = time.monotonic() + RECOVERY_INTERVAL_S
            passed = time.monotonic()
            published = publish_due(sessions, publisher)
        except Exception as exc:
            if not failing:
                log.warning("Outbox relay cannot publish yet (%s); will keep trying.", exc)
            failing = True
            stop.wait(min(5.0, interval * 10))
            continue
        if failing:
            log.info("Outbox relay is publishing again.")
            failing = False
        if published:
            log.debug("Outbox relay published %d messages.", published)
        if published < BATCH_SIZE:
            wakeup.wait(interval, passed)
    wakeup.close()
    publisher.close()
