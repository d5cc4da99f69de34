"""The Celery and kombu configuration shared by the relay, the workers and the API's probes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection

from jobs.broker import is_redis
from jobs.broker.queues import work_queues
from jobs.settings import Settings

FILESYSTEM_TRANSPORT = "jobs.broker.filesystem:Transport"
REDIS_TRANSPORT = "jobs.broker.redis:Transport"


def transport_options(settings: Settings, *, confirm_publish: bool = True) -> dict[str, Any]:
    """``confirm_publish``: on RabbitMQ, wait for the broker to take each message before going on."""
    if settings.is_embedded_broker:
        folder = str(settings.broker_dir / "messages")
        return {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(settings.broker_dir / "control"),
            "unacked_folder": str(settings.broker_dir / "unacked"),
            "polling_interval": 0.05,
        }
    if is_redis(settings.broker_url):
        # kombu looks for unacknowledged messages past the timeout only every 10th interval
        # (about 100 s) unless told otherwise; look every interval (10 s).
        return {"visibility_timeout": settings.visibility_timeout_s, "unacked_restore_throttle": 1}
    return {"confirm_publish": confirm_publish}


def ensure_broker_dirs(settings: Settings) -> None:
    if settings.is_embedded_broker:
        for name in ("messages", "control", "unacked"):
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


def ping(settings: Settings, timeout_s: float = 2.0) -> None:
    """Raises unless the broker answers within ``timeout_s``: kombu's Redis transport sets no
    socket timeout of its own, so a server that accepts and never answers would hang it."""
    options = transport_options(settings)
    if is_redis(settings.broker_url):
        options |= {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    url, kind = settings.broker_url, transport(settings)
    with Connection(url, transport=kind, transport_options=options, connect_timeout=timeout_s) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout_s)


@contextmanager
def control_app(settings: Settings) -> Iterator[Any]:
    """A Celery app on the platform's broker settings, for a broadcast to the workers (a ping,
    an inspect); closed afterwards."""
    from celery import Celery

    app = Celery(set_as_current=False)
    app.config_from_object(celery_config(settings))
    try:
        yield app
    finally:
        app.close()


TASK_EVENTS_KEY = "conveyor_task_events"
"""Where a worker's `enable_events` control command reads CONVEYOR_TASK_EVENTS."""


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
        # On demand, Flower turns task events on when it connects (and every 5 s); without a
        # reader they would cost the worker's main process a publish per task state.
        "worker_send_task_events": settings.task_events == "always",
        TASK_EVENTS_KEY: settings.task_events,
        "worker_prefetch_multiplier": settings.worker_prefetch,
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "broker_channel_error_retry": True,
        "timezone": "UTC",
        "enable_utc": True,
    }
