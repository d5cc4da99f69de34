"""Fixtures: every end-to-end test runs on each backend against a real worker process.

Under ``CI=true`` a backend whose services do not answer fails the run; elsewhere its tests are
skipped and the summary says which and how to start them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from jobs import service
from jobs.relay.outbox import publish_due
from jobs.relay.publisher import Publisher
from tests.support import BACKENDS, HOW_TO_START, Backend, missing_services

SKIPPED_BACKENDS: dict[str, list[str]] = {}


def require_services(backend: str) -> None:
    missing = missing_services(backend)
    if not missing:
        return
    message = f"backend {backend!r} needs {', '.join(missing)}, which did not answer; {HOW_TO_START}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    SKIPPED_BACKENDS[backend] = missing
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for backend, missing in SKIPPED_BACKENDS.items():
        terminalreporter.write_line(
            f"SKIPPED backend {backend}: {', '.join(missing)} not answering; {HOW_TO_START}.",
            yellow=True,
        )


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A migrated database, an empty broker, a worker and an outbox relay."""
    require_services(request.param)
    created = Backend.create(request.param, tmp_path_factory.mktemp(request.param))
    try:
        created.start_worker()
        created.start_relay()
        wait_for_worker(created)
        yield created
    finally:
        created.stop()


def wait_for_worker(backend: Backend) -> None:
    with backend.sessions.begin() as session:
        job = service.submit(session, backend.settings, service.Submission(type="echo", payload={}))
    publish_due(backend.sessions, Publisher(backend.settings), job_ids=[job.id])
    backend.wait_for_job(job.id, "succeeded", timeout=90)


@pytest.fixture(scope="session")
def app(backend: Backend) -> Flask:
    return create_app(backend.settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def writer(backend: Backend) -> str:
    """A token with the scopes a submitting service has."""
    return backend.token("jobs:write", "jobs:read")


@pytest.fixture
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The embedded backend with no worker, for tests that start their own processes."""
    created = Backend.create("embedded", tmp_path_factory.mktemp("embedded-own"))
    yield created
    created.stop()
