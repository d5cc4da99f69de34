"""The worker's consumer: messages it cannot use are dead-lettered, never logged and dropped.

Celery's default drops an undecodable body, rejects an unknown task name, and lets a task message
whose body is not ``[args, kwargs, embed]`` crash the whole worker. Here each of them goes to its
queue's dead-letter queue, unchanged, before it is acknowledged.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer.consumer import Consumer
from kombu.message import Message
from vine import promise

from workers.dead_letters import failure_info, publish_dead_letter

log = logging.getLogger(__name__)


class DeadLetteringConsumer(Consumer):
    class Blueprint(Consumer.Blueprint):
        """Without native delayed delivery: Conveyor never sends ETA messages (retries go
        through the outbox), and that step would declare dozens of queues on RabbitMQ."""

        default_steps = [s for s in Consumer.Blueprint.default_steps if not s.endswith(":DelayedDelivery")]

    def dead_letter(self, message: Message, reason: str, exc: BaseException | None, note: str) -> None:
        info = failure_info(reason, exc, message=f"{note}: {exc}" if exc else note, worker=self.hostname)
        try:
            publish_dead_letter(self.app, message, info)
        except Exception:
            log.error("Could not dead-letter an unusable message; leaving it unacknowledged.", exc_info=True)
            return
        if not message.acknowledged:
            message.ack()
        log.warning("Dead-lettered a message the worker cannot use (%s): %s.", reason, info["error"])

    def on_unknown_message(self, body: Any, message: Message) -> None:
        self.dead_letter(message, "unknown_message", None, "The message names no task")

    def on_unknown_task(self, body: Any, message: Message, exc: BaseException) -> None:
        task = (message.headers or {}).get("task")
        self.dead_letter(message, "unknown_task", exc, f"No task named {task!r} is registered")

    def on_invalid_task(self, body: Any, message: Message, exc: BaseException) -> None:
        self.dead_letter(message, "invalid_message", exc, "The message cannot be accepted")

    def on_decode_error(self, message: Message, exc: BaseException) -> None:
        self.dead_letter(message, "undecodable", exc, "The message body does not decode")

    def create_task_handler(self, promise: Any = promise) -> Any:
        handle = super().create_task_handler(promise)

        def on_task_received(message: Message) -> Any:
            try:
                return handle(message)
            except Exception as exc:
                return self.dead_letter(message, "invalid_message", exc, "The task message is malformed")

        return on_task_received
