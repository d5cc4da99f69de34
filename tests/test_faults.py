"""Faults a job must survive: cancellation, a worker killed mid-job, a broker gone at submit."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api import create_app
from jobs.models import OutboxMessage
from jobs.settings import load_settings
from tests.services import end_connections
from tests.support import Backend, auth, child_pids, submit, wait_until
from tests.tcp_proxy import TcpProxy

DEFAULT_PORTS = {"amqp": 5672, "redis": 6379}


def test_cancelling_a_queued_job_cancels_it_at_once_and_it_never_runs(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job_id = submit(client, writer, "echo", {"n": 1}, run_at=run_at)

    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(writer))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "cancelled"
    job = backend.job(job_id)
    assert (job.state, job.attempts, job.started_at) == ("cancelled", 0, None)
    assert waiting_messages(backend, job_id) == 0


def waiting_messages(backend: Backend, job_id: str) -> int:
    """Outbox rows not yet published for the job."""
    with backend.sessions() as session:
        statement = select(func.count()).where(OutboxMessage.job_id == uuid.UUID(job_id))
        return session.scalar(statement) or 0


def test_cancelling_a_running_job_stops_it_well_before_it_would_finish(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    job_id = submit(client, writer, "sleep", {"ms": 20000})
    backend.wait_for_job(job_id, "running", timeout=30)
    asked = time.monotonic()

    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(writer))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["cancel_requested"] is True
    job = backend.wait_for_job(job_id, "cancelled", "succeeded", timeout=30)
    assert job.state == "cancelled"
    assert time.monotonic() - asked < 10
    assert job.result is None


@pytest.mark.parametrize("name", ["embedded", "rabbitmq", "redis"])
def test_job_runs_again_and_succeeds_once_when_its_worker_process_is_killed(
    own_backend: Callable[..., Backend], name: str
) -> None:
    dedicated = own_backend(name)
    worker = dedicated.start_worker(concurrency=1)
    dedicated.start_relay()
    client = create_app(dedicated.settings).test_client()
    token = dedicated.token("jobs:write", "jobs:read")
    job_id = submit(client, token, "sleep", {"ms": 3000})
    dedicated.wait_for_job(job_id, "running", timeout=90)
    pool = wait_until(lambda: child_pids(worker.pid), 10, "the worker's pool process")

    os.kill(pool[0], signal.SIGKILL)

    job = dedicated.wait_for_job(job_id, "succeeded", "dead", "cancelled", timeout=60)
    assert job.state == "succeeded"
    assert job.result == {"slept_ms": 3000}
    assert job.attempts == 2


@pytest.mark.parametrize("name", ["rabbitmq", "redis"])
def test_workers_reconnect_without_requeueing_after_the_database_ended_their_connections(
    own_backend: Callable[..., Backend], name: str
) -> None:
    dedicated = own_backend(name)
    dedicated.start_worker()
    dedicated.start_relay()
    client = create_app(dedicated.settings).test_client()
    token = dedicated.token("jobs:write", "jobs:read")
    first = submit(client, token, "echo", {"n": 1})
    dedicated.wait_for_job(first, "succeeded", timeout=90)
    end_connections(dedicated.settings.database_url)

    jobs = [submit(client, token, "echo", {"n": n}) for n in range(4)]

    for job_id in jobs:
        assert dedicated.wait_for_job(job_id, "succeeded", "dead", timeout=60).state == "succeeded"
    logs = "".join(path.read_text() for path in dedicated.settings.data_dir.glob("*.log"))
    assert "Database unavailable" not in logs


def through_proxy(backend: Backend, proxy: TcpProxy) -> Backend:
    """The same backend, with its broker URL pointing at ``proxy`` instead of the broker."""
    url = urlsplit(backend.settings.broker_url)
    user = url.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"
    env = {**backend.env, "CONVEYOR_BROKER_URL": url._replace(netloc=netloc).geturl()}
    return Backend(backend.name, env, load_settings(env), backend.sessions)


@pytest.fixture
def proxied(
    request: pytest.FixtureRequest, own_backend: Callable[..., Backend]
) -> Iterator[tuple[Backend, TcpProxy]]:
    """A backend whose broker is reached through a proxy the test can close."""
    created = own_backend(request.param)
    url = urlsplit(created.settings.broker_url)
    proxy = TcpProxy(url.port or DEFAULT_PORTS[url.scheme])
    backend = through_proxy(created, proxy)
    try:
        yield backend, proxy
    finally:
        proxy.open()  # stop() releases the backend's broker through it
        backend.stop()
        proxy.close()


@pytest.mark.parametrize("proxied", ["rabbitmq", "redis"], indirect=True)
def test_job_submitted_while_the_broker_is_down_is_accepted_and_runs_once_it_is_back(
    proxied: tuple[Backend, TcpProxy],
) -> None:
    backend, proxy = proxied
    backend.start_worker(concurrency=1)
    backend.start_relay()
    client = create_app(backend.settings).test_client()
    token = backend.token("jobs:write", "jobs:read")
    backend.wait_for_job(submit(client, token, "echo", {}), "succeeded", timeout=90)
    proxy.close()

    started = time.monotonic()
    job_id = submit(client, token, "echo", {"while": "down"})
    assert time.monotonic() - started < 15
    assert backend.job(job_id).state == "queued"
    assert waiting_messages(backend, job_id) == 1
    proxy.open()

    job = backend.wait_for_job(job_id, "succeeded", "dead", timeout=90)
    assert job.state == "succeeded"
    assert job.result == {"while": "down"}
    assert job.attempts == 1
