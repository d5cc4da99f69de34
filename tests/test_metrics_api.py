"""The API's /metrics: requests by route and status and their latency, added up over gunicorn's
processes, public, and movable to a port of its own."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests
from flask.testing import FlaskClient

from tests.services import free_port, http_ok
from tests.support import Backend, wait_until

SERIES = re.compile(
    r'^conveyor_http_requests_total\{method="GET",route="([^"]+)",status="(\d+)"\} (\S+)$', re.M
)


def counts(text: str) -> dict[tuple[str, str], float]:
    return {(route, status): float(value) for route, status, value in SERIES.findall(text)}


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_requests_are_counted_by_route_and_status_without_a_token(client: FlaskClient) -> None:
    before = counts(client.get("/metrics").get_data(as_text=True))
    client.get("/health/live")
    client.get("/health/live")
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = counts(response.get_data(as_text=True))

    def grew(route: str, status: str) -> float:
        return after.get((route, status), 0) - before.get((route, status), 0)

    assert grew("/health/live", "200") == 2
    assert (
        grew("/v1/jobs/<uuid:job_id>", "401") + grew("/v1/jobs/<job_id>", "401") + grew("unmatched", "404")
        >= 1
    )
    assert grew("unmatched", "404") >= 1
    assert 'conveyor_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/health/live"}' in (
        response.get_data(as_text=True)
    )


def test_gunicorns_processes_add_up_and_a_metrics_port_moves_them(
    own_backend: Callable[..., Backend],
) -> None:
    backend = own_backend("embedded")
    port, metrics_port = free_port(), free_port()
    api = backend.spawn(
        "-m",
        "jobs.cli",
        "api",
        "--port",
        str(port),
        "--workers",
        "2",
        CONVEYOR_METRICS_PORT=str(metrics_port),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{base}/health/live"), 60, "the API to answer")
        for _ in range(20):  # new connections each time: gunicorn hands them to either process
            requests.get(f"{base}/health/live", timeout=5, headers={"Connection": "close"})
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 404
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert counts(text)[("/health/live", "200")] >= 20
    finally:
        api.terminate()
        api.wait(30)
