"""Flower, started by ``conveyor flower``, sees the workers and their tasks on each backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.services import free_port
from tests.support import Backend, stop_process, submit, wait_until

RESUBMIT_S = 5


@pytest.fixture(scope="module")
def flower(backend: Backend) -> Iterator[str]:
    """Flower's base URL, once it lists a worker.

    Its HTTP API answers without auth only when told to (Flower 2).
    """
    port = free_port()
    process = backend.spawn("-m", "jobs.cli", "flower", CONVEYOR_FLOWER_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: listed_test_workers(url), 60, "Flower to list a test worker")
        yield url
    finally:
        stop_process(process)
        backend.processes.remove(process)


def get_json(url: str, **params: str) -> Any:
    """The decoded body of a 200 answer, or None while Flower is not answering yet."""
    try:
        response = requests.get(url, params=params, timeout=10)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def listed_test_workers(flower: str) -> list[str]:
    return [name for name in get_json(f"{flower}/api/workers", refresh="1") or {} if name.startswith("test-")]


def test_flower_lists_the_running_worker(flower: str) -> None:
    assert listed_test_workers(flower)


def test_flower_lists_a_submitted_echo_task_once_it_succeeds(
    client: FlaskClient, writer: str, flower: str
) -> None:
    submitted: list[tuple[str, float]] = []

    def listed_echo_task() -> dict[str, Any] | None:
        # Flower's event stream may connect after it first lists workers; a job it missed is
        # followed by another a few seconds later.
        if not submitted or time.monotonic() - submitted[-1][1] > RESUBMIT_S:
            submitted.append((submit(client, writer, "echo", {"seen_by": "flower"}), time.monotonic()))
        tasks = get_json(f"{flower}/api/tasks") or {}
        found = (tasks.get(f"{job_id}.1") for job_id, _ in submitted)
        return next((t for t in found if t and t.get("state") == "SUCCESS"), None)

    task = wait_until(listed_echo_task, 60, "Flower to list an echo task that succeeded")

    assert task["name"] == "conveyor.diagnostics.echo"
