"""Flower keeps the tasks it has seen across a restart (its state file in the data folder)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import with_one_worker
from tests.services import free_port
from tests.support import Backend, stop_process, submit_and_publish, wait_until
from tests.test_flower import LOGIN, get_json, listed_test_workers

pytestmark = pytest.mark.e2e


def start_flower(backend: Backend) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = backend.spawn(
        "-m", "jobs.cli", "flower", CONVEYOR_FLOWER_PORT=str(port), CONVEYOR_FLOWER_BASIC_AUTH=":".join(LOGIN)
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: get_json(f"{url}/api/workers") is not None, 60, "Flower to answer")
    return process, url


def task_state(flower: str, job_id: str) -> Any:
    return (get_json(f"{flower}/api/tasks") or {}).get(f"{job_id}.1", {}).get("state")


def test_a_restarted_flower_still_lists_what_ran_before(own_backend: Callable[..., Backend]) -> None:
    backend = with_one_worker(own_backend, "rabbitmq", CONVEYOR_TASK_EVENTS="always")
    process, flower = start_flower(backend)
    wait_until(lambda: listed_test_workers(flower), 60, "Flower to list the worker")
    job_id = submit_and_publish(backend, "echo", {}, no_relay=True)
    wait_until(lambda: task_state(flower, job_id) == "SUCCESS", 60, "Flower to list the echo job")
    stop_process(process)

    _, restarted = start_flower(backend)

    assert task_state(restarted, job_id) == "SUCCESS"
    assert (backend.settings.data_dir / "flower").is_dir()
