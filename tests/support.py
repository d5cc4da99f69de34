"""Test helpers: backends on real services, worker processes, and polling with a deadline."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy.orm import Session, sessionmaker

from jobs import tokens
from jobs.broker.queues import QUEUES, dead_letter_queue_name
from jobs.db import make_engine, make_sessionmaker
from jobs.migrate import upgrade
from jobs.models import Job
from jobs.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("CONVEYOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("CONVEYOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BACKENDS = ("embedded", "rabbitmq", "redis")
REDIS_LOCK = "conveyor-test-run"
HOW_TO_START = "start PostgreSQL, RabbitMQ and Redis with `bash .ci/services.sh`"

T = TypeVar("T")


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def missing_services(backend: str) -> list[str]:
    needed = {"embedded": [], "rabbitmq": ["postgresql", "rabbitmq"], "redis": ["postgresql", "redis"]}
    ports = {"postgresql": 5432, "rabbitmq": 5672, "redis": 6379}
    return [name for name in needed[backend] if not answers("127.0.0.1", ports[name])]


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


def fresh_postgres_database(name: str) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def end_connections(database_url: str) -> int:
    """End every session on the database, as a restart would; waits until each has gone."""
    name = database_url.rsplit("/", 1)[-1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def private_vhost(suffix: str) -> str:
    """A RabbitMQ vhost of this backend's own, so concurrent test runs never share queues."""
    vhost = f"conveyor_test_{suffix}"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)
    return (
        RABBITMQ_URL.split("//", 1)[0] + "//" + RABBITMQ_URL.split("//", 1)[1].split("/", 1)[0] + f"/{vhost}"
    )


def private_redis_db() -> str:
    """A Redis database (1-11) no other test run holds, claimed with a lock key until stop()."""
    import redis

    base = REDIS_URL.rsplit("/", 1)[0]
    for db in range(1, 12):
        client = redis.Redis.from_url(f"{base}/{db}")
        holder = client.get(REDIS_LOCK)
        if holder is not None and process_alive(int(holder)):
            continue
        if client.set(REDIS_LOCK, str(os.getpid()), ex=7200, **({"xx": True} if holder else {"nx": True})):
            return f"{base}/{db}"
    raise RuntimeError("Every test Redis database (1-11) is held by another run.")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reset_broker(settings: Settings) -> None:
    """Delete Conveyor's queues (so they are declared anew) or flush the test Redis database."""
    if settings.broker_url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(settings.broker_url)
        owner = client.get(REDIS_LOCK)
        client.flushdb()
        if owner is not None:
            client.set(REDIS_LOCK, owner, ex=7200)
        return
    if not settings.broker_url.startswith("amqp"):
        return
    from kombu import Connection

    with Connection(settings.broker_url) as connection:
        for name in (*QUEUES, *(dead_letter_queue_name(q) for q in QUEUES)):
            channel = connection.channel()
            try:
                channel.queue_delete(name)
            finally:
                channel.close()


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
        env = {"CONVEYOR_DATA_DIR": str(data_dir), "CONVEYOR_RETRY_BACKOFF_MS": "100"}
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
        return cls(name, env, settings, make_sessionmaker(make_engine(settings)))

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

    def start_worker(self, concurrency: int = 2, name: str | None = None) -> subprocess.Popen[bytes]:
        hostname = name or f"test-{uuid.uuid4().hex[:6]}@%h"
        return self.spawn(
            "-m", "celery", "-A", "workers.app", "worker", "-l", "INFO",
            "-Q", ",".join(QUEUES), "-c", str(concurrency), "-n", hostname,
            "--without-mingle", "--without-gossip",
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
    """The direct children of ``pid`` (a Celery worker's pool processes)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def auth(token: str, **headers: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}", **headers}
