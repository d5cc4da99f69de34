"""What the benchmark phases stand on: a fresh backend, bounded waits, profiling, clean-up."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import redis
import requests
from kombu import Connection

from bench.raw_app import DEFAULTS_QUEUE, RAW_QUEUE
from jobs.broker.queues import QUEUES
from jobs.db import Database
from jobs.migrate import upgrade
from jobs.settings import load_settings
from tests.services import PG_ADMIN_URL, fresh_postgres_database, reset_broker
from tests.support import Backend

BROKER_URLS = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672//", "redis": "redis://127.0.0.1:6379/13"}
"""Where the benchmarks find each broker on loopback unless told (a Redis database of their own)."""
SHARED_BROKER_HINT = (
    "if tests run on the same broker they may consume or delete the queues; "
    "give the bench its own vhost or database (--rabbitmq-url, --redis-url)"
)


class BenchError(RuntimeError):
    """A phase could not run (a service missing, a process that never came up)."""


@contextmanager
def bench_backend(broker: str, broker_url: str) -> Iterator[Backend]:
    """A fresh migrated database and empty queues; everything it started is gone afterwards."""
    refuse_shared_queues(broker_url)
    data_dir = Path(tempfile.mkdtemp(prefix=f"conveyor-bench-{broker}-"))
    database = fresh_postgres_database(f"conveyor_bench_{broker}_{uuid.uuid4().hex[:8]}")
    env = {
        "CONVEYOR_DATA_DIR": str(data_dir),
        "CONVEYOR_DATABASE_URL": database,
        "CONVEYOR_BROKER_URL": broker_url,
        "BENCH_TIMINGS_DIR": str(data_dir),
    }
    settings = load_settings(env)
    backend = Backend(broker, env, settings, Database(settings).sessions)
    try:
        upgrade(settings)
        reset_broker(settings)
        yield backend
    except BenchError:
        print_log_tails(data_dir)
        raise
    finally:
        backend.stop()
        with suppress(Exception):
            empty_queues(broker_url)
        drop_database(database)
        shutil.rmtree(data_dir, ignore_errors=True)


def refuse_shared_queues(broker_url: str) -> None:
    """Tests share RabbitMQ's ``/`` vhost: a foreign worker on ``default`` would take our jobs."""
    if not broker_url.startswith("amqp"):
        return
    with Connection(broker_url, connect_timeout=4) as connection:
        channel = connection.channel()
        for name in (*QUEUES, RAW_QUEUE, DEFAULTS_QUEUE):
            try:
                _, _, consumers = channel.queue_declare(name, passive=True)
            except Exception:  # the queue does not exist; the failed passive declare closed the channel
                channel = connection.channel()
                continue
            if consumers:
                raise BenchError(f"queue {name!r} has {consumers} consumers from another process")


def empty_queues(broker_url: str) -> None:
    """Leave nothing behind for the next user of these brokers, even after an aborted run."""
    if broker_url.startswith("redis"):
        redis.Redis.from_url(broker_url).flushdb()
        return
    with Connection(broker_url, connect_timeout=4) as connection:
        for name in (RAW_QUEUE, DEFAULTS_QUEUE, *QUEUES):
            channel = connection.channel()
            try:
                if name in (RAW_QUEUE, DEFAULTS_QUEUE):
                    channel.queue_delete(name)
                else:
                    channel.queue_purge(name)
            except Exception as exc:  # a queue that was never declared, or a broker gone away
                if "NOT_FOUND" not in str(exc):
                    print(f"Could not empty queue {name!r} ({exc}).", flush=True)


def print_log_tails(data_dir: Path, lines: int = 15) -> None:
    for log in sorted(data_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {log.name} ---", *tail, sep="\n")


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def poll(
    count: Callable[[], int],
    target: int,
    timeout: float,
    process: subprocess.Popen[bytes],
    what: str,
    *,
    required: bool = False,
) -> int:
    """Wait until ``count()`` reaches ``target``; returns the last count, short of it on timeout.

    A ``required`` wait (warm-ups) that times out raises instead: measuring after it is pointless.
    """
    deadline = time.monotonic() + timeout
    while (value := count()) < target:
        if process.poll() is not None:
            raise BenchError(f"process {process.pid} exited with {process.returncode} waiting for {what}")
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:.0f} s waiting for {what}: {value} of {target}"
            if required:
                raise BenchError(f"{message}; {SHARED_BROKER_HINT}")
            print(f"  {message.capitalize()}.")
            return value
        time.sleep(0.05)
    return value


@contextmanager
def profiling(folder: Path | None, name: str, pid: int) -> Iterator[Callable[[], None]]:
    """py-spy on ``pid`` and its children until the block ends or the callback is called."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if folder is None or not Path(spy).exists():
        yield lambda: None
        return
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{name}.txt"
    argv = [spy, "record", "--gil", "-s", "-r", "200", "-f", "raw", "-o", str(output), "-p", str(pid)]
    spy_process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        if spy_process.poll() is None:
            spy_process.send_signal(signal.SIGINT)
            spy_process.wait(30)

    try:
        yield stop
    finally:
        stop()
        print(f"  py-spy profile: {output}")


def api_answers(base_url: str) -> int:
    try:
        return int(requests.get(f"{base_url}/health/live", timeout=1).status_code == 200)
    except requests.RequestException:
        return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
