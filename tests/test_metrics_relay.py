"""The relay's metrics: celery-exporter's names for what the workers did, read from the jobs'
own rows, and the platform's gauges (queues, outbox, dead letters, schedules, backups)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
import requests

from api import create_app
from tests.dead_letter_helpers import dead_letter_of, submit_failing
from tests.services import free_port
from tests.support import Backend, submit, wait_until

pytestmark = pytest.mark.parametrize("broker", ["redis", "rabbitmq"])


def value(text: str, metric: str, /, **labels: str) -> float | None:
    """The sample of ``metric`` whose labels include ``labels``."""
    for line in text.splitlines():
        found = re.match(rf"^{metric}(?:\{{(.*)\}})? (\S+)$", line)
        if found and all(f'{key}="{wanted}"' in (found[1] or "") for key, wanted in labels.items()):
            return float(found[2])
    return None


def test_a_scrape_tells_what_the_platform_did_and_holds(
    own_backend: Callable[..., Backend], broker: str
) -> None:
    backend = own_backend(broker)
    address = f"127.0.0.1:{free_port()}"
    backend.start_worker(concurrency=1)
    backend.start_relay(CONVEYOR_RELAY_METRICS_ADDRESS=address)
    url = f"http://{address}/metrics"
    wait_until(lambda: _scrape(url), 60, "the relay's metrics")
    client = create_app(backend.settings).test_client()
    token = backend.token("jobs:write", "jobs:read")
    done = submit(client, token, "echo", {"n": 1})
    failed = submit_failing(client, token, {"permanent": True})
    backend.wait_for_job(done, "succeeded", timeout=60)
    backend.wait_for_job(failed, "dead", timeout=60)
    dead_letter_of(backend, failed)
    time.sleep(6)  # the counters read five seconds behind

    text = _scrape(url)
    assert text is not None
    assert value(text, "celery_task_sent_total", name="echo", queue_name="default") == 1
    assert value(text, "celery_task_started_total", name="echo") == 1
    assert value(text, "celery_task_succeeded_total", name="echo") == 1
    assert value(text, "celery_task_failed_total", name="fail") == 1
    assert value(text, "celery_task_runtime_seconds_count", name="echo") == 1
    assert value(text, "celery_task_queue_wait_time_seconds_count", name="echo") == 1
    assert value(text, "celery_queue_length", queue_name="default") == 0
    assert value(text, "celery_worker_up") == 1
    assert value(text, "conveyor_dead_letters_waiting", queue_name="default") == 1
    assert value(text, "conveyor_outbox_backlog") == 0
    assert value(text, "conveyor_queue_oldest_waiting_seconds", queue_name="ocr") == 0
    assert value(text, "conveyor_schedule_late", schedule="purge-idempotency-keys") is not None
    assert (value(text, "conveyor_heartbeat_timestamp_seconds", component="relay") or 0) > time.time() - 60


def _scrape(url: str) -> str | None:
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException:
        return None
    return response.text if response.status_code == 200 else None
