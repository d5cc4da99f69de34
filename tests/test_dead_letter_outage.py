"""A job that fails while PostgreSQL is down: the broker keeps its dead letter until the indexer can store it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis
from kombu import Connection

from jobs.broker.queues import dead_letter_queue_name
from jobs.models import DeadLetter
from tests.capture_helpers import (
    INDEXER_RETRY_S,
    assert_letter_of_job,
    dead_letter_of_job,
    dedicated_overrides,
    echo_succeeds,
    letters_where,
)
from tests.services import PG_ADMIN_URL
from tests.support import Backend, submit_and_publish, wait_until
from tests.tcp_proxy import TcpProxy


def through(proxy: TcpProxy, database_url: str) -> str:
    """The same database, reached through the proxy."""
    real = urlsplit(database_url)
    return real._replace(netloc=real.netloc.replace(f":{real.port}", f":{proxy.port}")).geturl()


@pytest.fixture
def database_proxied(
    request: pytest.FixtureRequest, own_backend: Callable[..., Backend]
) -> Iterator[tuple[Backend, TcpProxy]]:
    """A backend of its own whose worker and relay reach PostgreSQL through a closeable proxy."""
    created = own_backend(request.param, **dedicated_overrides(request.param))
    proxy = TcpProxy(urlsplit(PG_ADMIN_URL).port or 5432)
    try:
        proxied_url = through(proxy, created.settings.database_url)
        created.start_worker(concurrency=1, CONVEYOR_DATABASE_URL=proxied_url)
        created.start_relay(CONVEYOR_DATABASE_URL=proxied_url)
        yield created, proxy
    finally:
        created.stop()
        proxy.close()


def waiting_in_dead_letter_queue(backend: Backend) -> int:
    """Messages ready in ``default.dead``: neither indexed nor held by the indexer right now."""
    name = dead_letter_queue_name("default")
    if backend.name == "redis":
        with redis.Redis.from_url(backend.settings.broker_url) as client:
            return int(client.llen(name))
    with Connection(backend.settings.broker_url) as connection:
        return connection.default_channel.queue_declare(name, passive=True).message_count


@pytest.mark.parametrize("database_proxied", ["rabbitmq", "redis"], indirect=True)
def test_job_failing_while_postgresql_is_down_is_kept_by_the_broker_and_indexed_once_it_is_back(
    database_proxied: tuple[Backend, TcpProxy],
) -> None:
    backend, proxy = database_proxied
    echo_succeeds(backend)
    job_id = submit_and_publish(backend, "fail", {"permanent": True, "sleep_ms": 3000, "message": "no good"})
    backend.wait_for_job(job_id, "running", timeout=30)
    closed = time.monotonic()
    proxy.close()

    wait_until(
        lambda: waiting_in_dead_letter_queue(backend) == 1 and time.monotonic() - closed > 5,
        30,
        "the dead letter to wait in default.dead for 5 s",
    )
    assert letters_where(backend, DeadLetter.job_id == uuid.UUID(job_id)) == []
    assert backend.job(job_id).state == "running"
    proxy.open()

    letter = dead_letter_of_job(backend, job_id)
    job = backend.wait_for_job(job_id, "dead", timeout=30)
    assert (letter.reason, letter.error_type) == ("permanent_error", "PermanentError")
    assert letter.error == "no good"
    assert_letter_of_job(letter, job, job_id, "fail", "conveyor.diagnostics.fail")
    assert letter.first_failed_at == letter.last_failed_at
    assert letter.last_failed_at < letter.created_at
    assert (job.error_type, job.error_message) == ("PermanentError", "no good")
    wait_until(lambda: waiting_in_dead_letter_queue(backend) == 0, 10, "default.dead to be empty")
    time.sleep(2 * INDEXER_RETRY_S)  # A second copy would be indexed within this window.
    assert len(letters_where(backend, DeadLetter.job_id == uuid.UUID(job_id))) == 1


@pytest.mark.parametrize("database_proxied", ["rabbitmq"], indirect=True)
def test_a_job_that_waits_out_a_database_outage_is_not_pushed_past_the_delivery_limit(
    database_proxied: tuple[Backend, TcpProxy],
) -> None:
    """Each try while PostgreSQL is down sends the message back as a new copy; a requeue would
    count as a delivery, and RabbitMQ would dead-letter the job after CONVEYOR_DELIVERY_LIMIT (5)."""
    backend, proxy = database_proxied
    echo_succeeds(backend)
    proxy.close()
    job_id = submit_and_publish(backend, "echo", {"waited": "out"})
    log_of_worker = next(backend.settings.data_dir.glob("-m-0.log"))
    wait_until(lambda: log_of_worker.read_text().count("sending its message back") >= 7, 60, "seven tries")
    proxy.open()

    job = backend.wait_for_job(job_id, "succeeded", "dead", timeout=60)
    assert (job.state, job.result) == ("succeeded", {"waited": "out"})
    assert letters_where(backend, DeadLetter.job_id == uuid.UUID(job_id)) == []
