"""CONVEYOR_TASK_EVENTS: what a worker sends before any monitor asks, and when one asks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jobs.broker.config import control_app
from tests.conftest import with_one_worker
from tests.support import Backend, submit_and_publish, wait_until

pytestmark = pytest.mark.e2e


@contextmanager
def listening(backend: Backend) -> Iterator[list[dict[str, Any]]]:
    """Every event the broker carries while inside, as Flower's receiver would see it."""
    seen: list[dict[str, Any]] = []
    with control_app(backend.settings) as app, app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": seen.append})
        thread = threading.Thread(target=receiver.capture, kwargs={"limit": None, "wakeup": False})
        thread.start()
        try:
            wait_until(lambda: kinds(seen) & {"worker-heartbeat"}, 30, "a worker heartbeat")
            yield seen
        finally:
            receiver.should_stop = True
            thread.join(timeout=10)


def kinds(events: list[dict[str, Any]]) -> set[str]:
    return {event["type"] for event in events}


def settled(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events seen once one more heartbeat has come (every 2 s): the worker's task events
    travel on the same connection, so none is still on its way."""
    beats = sum(1 for event in seen if event["type"] == "worker-heartbeat")
    wait_until(lambda: sum(1 for event in seen if event["type"] == "worker-heartbeat") > beats, 10)
    return seen


def task_kinds(events: list[dict[str, Any]]) -> set[str]:
    return {kind for kind in kinds(events) if kind.startswith("task-")}


def worker_with(own_backend: Callable[..., Backend], mode: str) -> Backend:
    return with_one_worker(own_backend, "rabbitmq", CONVEYOR_TASK_EVENTS=mode)


def run_echo(backend: Backend) -> None:
    backend.wait_for_job(submit_and_publish(backend, "echo", {}, no_relay=True), "succeeded")


def enable_events(backend: Backend) -> list[dict[str, Any]]:
    with control_app(backend.settings) as app:
        return app.control.enable_events(reply=True, timeout=5)


def test_always_sends_task_events_before_anyone_asks(own_backend: Callable[..., Backend]) -> None:
    backend = worker_with(own_backend, "always")
    with listening(backend) as seen:
        run_echo(backend)
        wanted = {"task-received", "task-started", "task-succeeded"}
        wait_until(lambda: task_kinds(seen) >= wanted, 10, "the echo job's task events")


def test_on_demand_sends_none_until_asked_then_every_one(own_backend: Callable[..., Backend]) -> None:
    backend = worker_with(own_backend, "on-demand")
    with listening(backend) as seen:
        run_echo(backend)
        assert not task_kinds(settled(seen))
        assert "enabled" in str(enable_events(backend))
        run_echo(backend)
        wait_until(lambda: "task-succeeded" in kinds(seen), 10, "a task-succeeded event")


def test_off_refuses_a_monitors_ask(own_backend: Callable[..., Backend]) -> None:
    backend = worker_with(own_backend, "off")
    with listening(backend) as seen:
        replies = enable_events(backend)
        run_echo(backend)
        assert "CONVEYOR_TASK_EVENTS=off" in str(replies)
        assert not task_kinds(settled(seen))
