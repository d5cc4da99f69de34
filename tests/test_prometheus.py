"""A real Prometheus (Debian's) on loopback scrapes a running API and relay, loads the alert
rules, and answers a query for one metric of each kind."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from api import create_app
from tests.services import free_port, http_ok
from tests.support import Backend, submit, wait_until

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml"
CONFIG = """
global: {{scrape_interval: 3s, scrape_timeout: 3s, evaluation_interval: 1s}}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: conveyor-api
    static_configs: [{{targets: ["127.0.0.1:{api}"]}}]
  - job_name: conveyor-relay
    static_configs: [{{targets: ["{relay}"]}}]
"""


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int, str], str]]:
    """Starts Prometheus for an API port and a relay address; gives its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: `bash .ci/services.sh` installs Debian's prometheus package")
    started: list[subprocess.Popen[bytes]] = []

    def start(api: int, relay: str) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(CONFIG.format(rules=RULES, api=api, relay=relay))
        port = free_port()
        argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}"]
        argv.append(f"--web.listen-address=127.0.0.1:{port}")
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115  # closed with the process
        started.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        process.wait(30)


def query(base: str, expression: str) -> list[dict[str, Any]]:
    try:
        response = requests.get(f"{base}/api/v1/query", params={"query": expression}, timeout=5)
    except requests.RequestException:
        return []
    return response.json()["data"]["result"] if response.status_code == 200 else []


def test_prometheus_scrapes_the_api_and_the_relay(
    own_backend: Callable[..., Backend], prometheus: Callable[[int, str], str]
) -> None:
    backend = own_backend("redis")
    api_port, relay = free_port(), f"127.0.0.1:{free_port()}"
    backend.start_worker(concurrency=1)
    backend.start_relay(CONVEYOR_RELAY_METRICS_ADDRESS=relay)
    api = backend.spawn("-m", "jobs.cli", "api", "--port", str(api_port), "--workers", "1")
    try:
        base = prometheus(api_port, relay)
        client = create_app(backend.settings).test_client()
        job = submit(client, backend.token("jobs:write", "jobs:read"), "echo", {"n": 1})
        backend.wait_for_job(job, "succeeded", timeout=60)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{api_port}/health/live"), 60, "the API")
        for kind, expression in [
            ("counter, the API's", 'conveyor_http_requests_total{route="/health/live",status="200"} > 0'),
            ("histogram", "conveyor_http_request_duration_seconds_count > 0"),
            ("gauge, from the broker", 'celery_queue_length{queue_name="default"}'),
            ("counter, from the jobs' rows", 'celery_task_succeeded_total{name="echo"} > 0'),
            ("gauge, from the database", "conveyor_outbox_backlog"),
            ("both targets up", 'sum(up{job=~"conveyor-api|conveyor-relay"}) == 2'),
        ]:
            wait_until(partial(query, base, expression), 90, f"Prometheus to answer {kind}: {expression}")
        rules = requests.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert "ConveyorWorkerDown" in {rule["name"] for group in rules for rule in group["rules"]}
    finally:
        api.terminate()
        api.wait(30)
