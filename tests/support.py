"""Test helpers: backends on real services, worker processes, and polling with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from jobs import service, tokens
from jobs.broker.queues import QUEUES
from jobs.db import Database
from jobs.migrate import upgrade
from jobs.models import Job
from jobs.relay.outbox import publish_due
from jobs.relay.publisher import Publisher
from jobs.settings import Settings, load_settings
from tests.services import (
    PG_ADMIN_URL,
    REDIS_LOCK,
    fresh_postgres_database,
    private_redis_db,
    private_vhost,
    reset_broker,
)

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("embedded", "rabbitmq", "redis")

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(0.05)


@dataclass
class Backend:
    """One database + broker pair, with its own data folder, migrated and empty."""

    name: str
    env: dict[str, str]
    settings: Settings
    sessions: sessionmaker[Session]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, name: str, data_dir: Path, overrides: dict[str, str] | None = None) -> Backend:
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {"CONVEYOR_DATA_DIR": str(data_dir), "CONVEYOR_RETRY_BACKOFF_MS": "100"}
        env["CONVEYOR_FILE_ROOTS"] = str(data_dir.with_name(f"{data_dir.name}-files"))
        env["CONVEYOR_RELAY_INTERVAL_MS"] = "50"
        suffix = uuid.uuid4().hex[:8]
        overrides = overrides or {}
        if name != "embedded":
            env["CONVEYOR_DATABASE_URL"] = fresh_postgres_database(f"conveyor_test_{name}_{suffix}")
            if "CONVEYOR_BROKER_URL" not in overrides:
                env["CONVEYOR_BROKER_URL"] = (
                    private_vhost(suffix) if name == "rabbitmq" else private_redis_db()
                )
        env.update(overrides)
        settings = load_settings(env)
        upgrade(settings)
        reset_broker(settings)
        return cls(name, env, settings, Database(settings).sessions)

    @property
    def files_root(self) -> Path:
        """The folder ``file://`` URLs in this backend's payloads may name."""
        return Path(self.settings.file_roots[0])

    def process_env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        return {**base, **self.env, **extra}

    def spawn(self, *argv: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = open(self.settings.data_dir / f"{argv[0]}-{len(self.processes)}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=self.process_env(**extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_worker(
        self, concurrency: int = 2, name: str | None = None, **extra_env: str
    ) -> subprocess.Popen[bytes]:
        hostname = name or f"test-{uuid.uuid4().hex[:6]}@%h"
        return self.spawn(
            "-m", "celery", "-A", "workers.app", "worker", "-l", "INFO",
            "-Q", ",".join(QUEUES), "-c", str(concurrency), "-n", hostname, "-O", "fair",
            "--without-mingle", "--without-gossip", **extra_env,
        )  # fmt: skip

    def start_relay(self, **extra_env: str) -> subprocess.Popen[bytes]:
        return self.spawn("-m", "jobs.cli", "relay", **extra_env)

    def token(self, *scopes: str) -> str:
        with self.sessions.begin() as session:
            return tokens.create_token(session, "test", list(scopes))

    def job(self, job_id: str | uuid.UUID) -> Job:
        with self.sessions() as session:
            found = session.get(Job, uuid.UUID(str(job_id)))
        assert found is not None, f"job {job_id} has no row"
        return found

    def wait_for_job(self, job_id: str | uuid.UUID, *states: str, timeout: float = 60) -> Job:
        def reached() -> Job | None:
            job = self.job(job_id)
            return job if job.state in states else None

        return wait_until(reached, timeout, f"job {job_id} to be {' or '.join(states)}")

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
        self.processes.clear()
        self.sessions.kw["bind"].dispose()
        if self.settings.database_url.startswith("postgresql"):
            name = self.settings.database_url.rsplit("/", 1)[-1]
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.settings.broker_url.startswith("redis"):
            import redis

            redis.Redis.from_url(self.settings.broker_url).delete(REDIS_LOCK)
        vhost = self.settings.broker_url.rsplit("/", 1)[-1]
        if self.settings.broker_url.startswith("amqp") and vhost.startswith("conveyor_test_"):
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (a Celery worker's pool processes), whichever of its
    threads forked them: billiard's supervisor thread forks the replacements."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            found += [int(p) for p in children.read_text().split()]
    return sorted(found)


def auth(token: str, **headers: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}", **headers}


def submit(client: FlaskClient, token: str, job_type: str, payload: dict[str, Any], **extra: Any) -> str:
    """Submit a job over HTTP as a service would; returns its id once the API accepted it."""
    response = client.post(
        "/v1/jobs", json={"type": job_type, "payload": payload, **extra}, headers=auth(token)
    )
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{response.get_json()['id']}"
    return str(response.get_json()["id"])


def submit_and_publish(
    backend: Backend, job_type: str, payload: dict[str, Any], *, no_relay: bool = False, **extra: Any
) -> str:
    """Row first, commit, then publish, as the relay would. A running relay may publish the row
    first; with ``no_relay`` the test runs none, and this publish must be the one."""
    with backend.sessions.begin() as session:
        job = service.submit(session, backend.settings, service.Submission(job_type, payload, **extra))
    published = publish_due(backend.sessions, Publisher(backend.settings), job_ids=[job.id])
    assert published == 1 if no_relay else published in (0, 1)
    return str(job.id)


def conveyor(
    backend: Backend, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the ``conveyor`` command as an operator would, with no terminal on its input."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=ROOT,
        env=backend.process_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app on a real threaded HTTP server on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
