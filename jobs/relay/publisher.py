"""Job messages out to the broker: Celery's own task message, sent through kombu in batches."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu import Producer

from jobs import messages
from jobs.broker import is_rabbitmq, is_redis
from jobs.broker.config import celery_config
from jobs.broker.queues import MAX_PRIORITY
from jobs.errors import PublishRefusedError
from jobs.settings import Settings

PERSISTENT_DELIVERY_MODE = 2


class Publisher:
    """Sends job messages (the job id and its dispatch number, never the payload) in batches.

    On RabbitMQ a batch is published on a channel in confirm mode and ``batch`` returns only once
    the broker has confirmed every message: one wait per batch, not one per message. On
    Redis/Valkey a batch's pushes go in pipelines (kombu's ``Producer.batch``): a round trip per
    thousand messages, not one per message.
    """

    CONFIRM_TIMEOUT_S = 30.0

    def __init__(self, settings: Settings):
        self.celery = Celery("conveyor-publisher", set_as_current=False)
        self.celery.config_from_object(celery_config(settings, confirm_publish=False))
        self.confirms = is_rabbitmq(settings.broker_url)
        self.lowest_first = is_redis(settings.broker_url)
        self.producer: Producer | None = None
        self.sent = 0
        self.unconfirmed: set[int] = set()
        self.refused = 0
        self.declared: set[str] = set()
        self.origin = anon_nodename()

    @contextmanager
    def batch(self) -> Iterator[None]:
        try:
            with self._producer().batch():
                yield
            self._wait_for_confirms()
        except BaseException:
            self.close_connection()
            raise

    def publish(self, job_id: uuid.UUID, task_name: str, queue: str, priority: int, dispatch: int) -> None:
        """Celery's own task message, handed to kombu directly: ``send_task`` would also route
        it, send signals and merge retry policies, which cost the relay a third of its CPU."""
        message = messages.task_message(self.celery, task_name, job_id, dispatch, origin=self.origin)
        self._producer().publish(
            message.body,
            exchange="",
            routing_key=queue,
            serializer="json",
            headers=message.headers,
            delivery_mode=PERSISTENT_DELIVERY_MODE,
            priority=MAX_PRIORITY - priority if self.lowest_first else priority,
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
            messages.decode_body(message),
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
