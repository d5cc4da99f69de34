"""The Celery configuration and queue declarations shared by publishers and workers.

It lives in ``jobs`` because the API and the outbox relay publish to the same queues the workers
consume: a queue declared with other arguments on one side is refused by RabbitMQ on the other.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Exchange, Queue

from jobs.settings import Settings

QUEUES = ("default", "ocr", "imports", "maintenance")
DEAD_LETTER_EXCHANGE = "conveyor.dead"
FILESYSTEM_TRANSPORT = "jobs.filesystem_transport:Transport"
REDIS_TRANSPORT = "jobs.redis_transport:Transport"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dead"


def is_rabbitmq(broker_url: str) -> bool:
    return broker_url.startswith(("amqp", "pyamqp"))


def is_redis(broker_url: str) -> bool:
    """``redis://`` and ``rediss://``; settings have already turned ``valkey://`` into these."""
    return broker_url.startswith("redis")


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


def transport_options(settings: Settings, *, confirm_publish: bool = True) -> dict[str, Any]:
    """``confirm_publish``: on RabbitMQ, wait for the broker to take each message before going on."""
    if settings.is_embedded_broker:
        folder = str(settings.broker_dir / "messages")
        return {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(settings.broker_dir / "control"),
            "polling_interval": 0.05,
        }
    if is_redis(settings.broker_url):
        # kombu looks for unacknowledged messages past the timeout only every 10th interval
        # (about 100 s) unless told otherwise; look every interval (10 s).
        return {"visibility_timeout": settings.visibility_timeout_s, "unacked_restore_throttle": 1}
    return {"confirm_publish": confirm_publish}


def ensure_broker_dirs(settings: Settings) -> None:
    if settings.is_embedded_broker:
        for name in ("messages", "control"):
            (settings.broker_dir / name).mkdir(parents=True, exist_ok=True)


def transport(settings: Settings) -> str | None:
    """kombu picks the transport from the URL's scheme unless told; ours fix kombu's (see each)."""
    if settings.is_embedded_broker:
        return FILESYSTEM_TRANSPORT
    if is_redis(settings.broker_url):
        return REDIS_TRANSPORT
    return None


def connection(settings: Settings) -> Connection:
    return Connection(
        settings.broker_url, transport=transport(settings), transport_options=transport_options(settings)
    )


def ping(settings: Settings) -> None:
    with connection(settings) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def celery_config(settings: Settings, *, confirm_publish: bool = True) -> dict[str, Any]:
    ensure_broker_dirs(settings)
    return {
        "broker_url": settings.broker_url,
        "broker_transport": transport(settings),
        "broker_transport_options": transport_options(settings, confirm_publish=confirm_publish),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_queues": work_queues(settings),
        "task_default_queue": "default",
        "task_create_missing_queues": False,
        # Flower turns task events on when it connects (and every 5 s); without it they cost the
        # worker's main process a publish per task state for no reader.
        "worker_send_task_events": False,
        "worker_prefetch_multiplier": settings.worker_prefetch,
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "broker_channel_error_retry": True,
        "timezone": "UTC",
        "enable_utc": True,
    }
