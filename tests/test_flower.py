"""Flower, started by ``conveyor flower``, sees the workers and their tasks on each backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.services import free_port
from tests.support import Backend, conveyor, stop_process, submit, wait_until

RESUBMIT_S = 5


LOGIN = ("operator", f"pw-{uuid.uuid4().hex}")


@pytest.fixture(scope="module")
def flower(backend: Backend) -> Iterator[str]:
    """Flower's base URL, once it lists a worker; it always asks for a login."""
    port = free_port()
    login = ":".join(LOGIN)
    process = backend.spawn(
        "-m", "jobs.cli", "flower", CONVEYOR_FLOWER_PORT=str(port), CONVEYOR_FLOWER_BASIC_AUTH=login
    )
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
        response = requests.get(url, params=params, auth=LOGIN, timeout=10)
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


def test_flower_refuses_a_request_without_its_login_and_a_cross_site_one_with_it(flower: str) -> None:
    anonymous = requests.get(f"{flower}/api/workers", timeout=10)
    cross_site = requests.post(
        f"{flower}/api/task/async-apply/conveyor.diagnostics.echo",
        json={"args": []},
        auth=LOGIN,
        headers={"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"},
        timeout=10,
    )

    assert anonymous.status_code == 401
    assert "Access-Control-Allow-Origin" not in anonymous.headers
    assert cross_site.status_code == 403


def test_flowers_password_is_not_on_its_command_line(backend: Backend, flower: str) -> None:
    command_lines = [
        Path(f"/proc/{p.pid}/cmdline").read_bytes() for p in backend.processes if p.poll() is None
    ]
    assert command_lines and not any(LOGIN[1].encode() in line for line in command_lines)


def test_flower_will_not_start_without_a_login(backend: Backend) -> None:
    done = conveyor(backend, "flower", timeout=60, CONVEYOR_FLOWER_BASIC_AUTH="")
    assert done.returncode == 2 and "CONVEYOR_FLOWER_BASIC_AUTH" in done.stderr
