"""gunicorn's hooks for the API's metrics (api/metrics.py): a dead worker's counts are kept
apart from a live one's, and CONVEYOR_METRICS_PORT is served by the master."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess, start_http_server

from jobs.settings import load_settings


def when_ready(server: Any) -> None:
    settings = load_settings()
    if settings.metrics_port:
        from api.metrics import registry

        start_http_server(settings.metrics_port, addr=settings.api_host, registry=registry())


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)
