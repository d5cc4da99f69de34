"""Fixtures: every end-to-end test runs on each backend against a real worker process.

Under ``CI=true`` a backend whose services do not answer fails the run; elsewhere its tests are
skipped and the summary says which and how to start them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from jobs.db import Database
from jobs.migrate import upgrade
from jobs.settings import load_settings
from tests.browser import browser, page  # noqa: F401 (fixtures for the browser tests)
from tests.s3_server import CREDENTIALS, S3Server
from tests.services import (
    HOW_TO_START,
    PG_ADMIN_URL,
    SKIPPED_BACKENDS,
    answers,
    fresh_postgres_database,
    require_services,
)
from tests.support import BACKENDS, Backend, submit_and_publish


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for backend, missing in SKIPPED_BACKENDS.items():
        terminalreporter.write_line(
            f"SKIPPED backend {backend}: {', '.join(missing)} not answering; {HOW_TO_START}.",
            yellow=True,
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS for the whole run; this process and every process a test starts use it."""
    server = S3Server(tmp_path_factory.mktemp("seaweedfs")).start()
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[Backend]:
    """A migrated database, an empty broker, a worker and an outbox relay, all using the test S3."""
    require_services(request.param)
    created = Backend.create(request.param, tmp_path_factory.mktemp(request.param), s3_server.env)
    try:
        created.start_worker()
        created.start_relay()
        wait_for_worker(created)
        yield created
    finally:
        created.stop()


def wait_for_worker(backend: Backend) -> None:
    backend.wait_for_job(submit_and_publish(backend, "echo", {}), "succeeded", timeout=90)


def with_one_worker(make: Callable[..., Backend], name: str, **overrides: str) -> Backend:
    """A backend of the test's own (``own_backend``) with a one-process worker that runs jobs."""
    backend = make(name, **overrides)
    backend.start_worker(concurrency=1)
    wait_for_worker(backend)
    return backend


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


@pytest.fixture(scope="session")
def admin(backend: Backend) -> str:
    """A token with every scope."""
    return backend.token("admin")


@pytest.fixture(scope="session")
def ops(backend: Backend) -> str:
    """A token with the scope operators have."""
    return backend.token("ops")


@pytest.fixture
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The embedded backend with no worker, for tests that start their own processes."""
    created = Backend.create("embedded", tmp_path_factory.mktemp("embedded-own"))
    yield created
    created.stop()


@pytest.fixture
def own_backend(tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """Makes backends of the test's own: ``own_backend("redis", CONVEYOR_X="1")`` is a migrated
    database and an empty broker that no session worker consumes, with no processes yet. Each
    is stopped (its processes, database and broker) after the test."""
    made: list[Backend] = []

    def make(name: str, **overrides: str) -> Backend:
        require_services(name)
        created = Backend.create(name, tmp_path / f"{name}-{len(made)}", overrides)
        made.append(created)
        return created

    yield make
    for created in made:
        created.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated database of the parameter's kind, dropped after the test."""
    environ = {"CONVEYOR_DATA_DIR": str(tmp_path)}
    name = None
    if request.param == "postgresql":
        if not answers("127.0.0.1", 5432):
            message = f"PostgreSQL did not answer on 127.0.0.1:5432; {HOW_TO_START}"
            pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
        name = f"conveyor_test_sm_{uuid.uuid4().hex[:8]}"
        environ["CONVEYOR_DATABASE_URL"] = fresh_postgres_database(name)
    db = Database(load_settings(environ))
    try:
        upgrade(db.settings)
        yield db
    finally:
        db.dispose()
        if name is not None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
