"""The real services the tests run on: which answer, and a private database, vhost or Redis
database for each backend, so concurrent test runs never share state."""

from __future__ import annotations

import os
import socket
import subprocess

import psycopg
import pytest

from jobs.broker.queues import QUEUES, dead_letter_queue_name
from jobs.settings import Settings

PG_ADMIN_URL = os.environ.get("CONVEYOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("CONVEYOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REDIS_LOCK = "conveyor-test-run"
HOW_TO_START = "start PostgreSQL, RabbitMQ and Redis with `bash .ci/services.sh`"
SKIPPED_BACKENDS: dict[str, list[str]] = {}


def require_services(backend: str) -> None:
    """Skip the test when the backend's services are down; under ``CI=true``, fail it."""
    missing = missing_services(backend)
    if not missing:
        return
    message = f"backend {backend!r} needs {', '.join(missing)}, which did not answer; {HOW_TO_START}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    SKIPPED_BACKENDS[backend] = missing
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 (a process that serves HTTP is up)."""
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def missing_services(backend: str) -> list[str]:
    needed = {"embedded": [], "rabbitmq": ["postgresql", "rabbitmq"], "redis": ["postgresql", "redis"]}
    ports = {"postgresql": 5432, "rabbitmq": 5672, "redis": 6379}
    return [name for name in needed[backend] if not answers("127.0.0.1", ports[name])]


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
        if client.set(REDIS_LOCK, str(os.getpid()), ex=7200, xx=holder is not None, nx=holder is None):
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
