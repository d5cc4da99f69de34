"""The queues, declared once: publishers and workers must declare them with the same arguments,
or RabbitMQ refuses the second. Each work queue hands poison messages to ``<queue>.dead``."""

from __future__ import annotations

from kombu import Exchange, Queue

from jobs.broker import is_rabbitmq
from jobs.settings import Settings

QUEUES = ("default", "ocr", "imports", "maintenance")
# A job's priority, 0 to 9, higher sooner, as on RabbitMQ; kombu's Redis transport takes 0 as the
# highest, so the publisher turns it round there. Quorum queues and the file-system broker keep order.
MAX_PRIORITY = 9
# Queues of jobs that run for minutes: a worker serving only these reserves no message ahead, so
# none waits behind a long job while another worker is idle.
LONG_QUEUES = ("ocr", "imports", "maintenance")
DEAD_LETTER_EXCHANGE = "conveyor.dead"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dead"


def work_queues(settings: Settings) -> list[Queue]:
    """Work queues; on RabbitMQ quorum queues that hand poison messages to ``<queue>.dead``."""
    if not is_rabbitmq(settings.broker_url):
        return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]
    return [
        Queue(
            name,
            Exchange(name, type="direct"),
            routing_key=name,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": settings.delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": dead_letter_queue_name(name),
                # Dead-letter with publisher confirms, so a poison message is never dropped on
                # the way to its dead-letter queue (this strategy needs reject-publish).
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        for name in QUEUES
    ]


def dead_letter_queue(broker_url: str, queue: str) -> Queue:
    """The broker-side dead-letter queue of ``queue``: declared, never consumed by workers."""
    name = dead_letter_queue_name(queue)
    arguments = {"x-queue-type": "quorum"} if is_rabbitmq(broker_url) else None
    return Queue(
        name, Exchange(DEAD_LETTER_EXCHANGE, type="direct"), routing_key=name, queue_arguments=arguments
    )


def dead_letter_queues(settings: Settings) -> list[Queue]:
    return [dead_letter_queue(settings.broker_url, name) for name in QUEUES]
