"""The API's own metrics: requests by route and status, and how long each took to answer.

Under gunicorn every worker process counts apart; prometheus-client's multiprocess mode adds them
up (`PROMETHEUS_MULTIPROC_DIR`, a fresh folder `conveyor api` makes). `/metrics` is not
behind a token, as Prometheus scrapes it; `CONVEYOR_METRICS_PORT` moves it to a port of its own,
served by gunicorn's master (api/gunicorn_conf.py), which need not be published with the API.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from jobs.settings import Settings

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUESTS = Counter(
    "conveyor_http_requests_total",
    "HTTP requests answered, by route and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "conveyor_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def register(app: Flask, settings: Settings) -> None:
    app.before_request(_started)
    app.after_request(_counted)
    if not settings.metrics_port:
        app.add_url_rule("/metrics", "metrics", exposition)


def _started() -> None:
    g.conveyor_started = time.perf_counter()


def _counted(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    method = request.method if request.method in METHODS else "OTHER"  # a client cannot mint series
    REQUESTS.labels(method, route, str(response.status_code)).inc()
    started = g.get("conveyor_started")
    if started is not None:
        LATENCY.labels(method, route).observe(time.perf_counter() - started)
    return response


def registry() -> CollectorRegistry:
    """Every process's counts under gunicorn; this process's alone otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def exposition() -> Response:
    return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
