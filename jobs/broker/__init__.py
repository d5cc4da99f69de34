"""The broker: Celery's configuration (``config``), the queues (``queues``), and the two kombu
transports Conveyor fixes (``filesystem``, ``redis``). Publishers and workers share all of it."""

from __future__ import annotations


def is_rabbitmq(broker_url: str) -> bool:
    return broker_url.startswith(("amqp", "pyamqp"))


def is_redis(broker_url: str) -> bool:
    """``redis://`` and ``rediss://``; settings have already turned ``valkey://`` into these."""
    return broker_url.startswith("redis")
