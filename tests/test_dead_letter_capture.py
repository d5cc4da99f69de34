"""Every message a worker gives up on is captured whole, with why, and can be sent again."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from kombu import Connection
from sqlalchemy import ColumnElement, select

from jobs import dead_letters, messages
from jobs.broker.config import transport_options
from jobs.broker.queues import dead_letter_queue_name, work_queues
from jobs.messages import decode_body
from jobs.models import DeadLetter, DeadLetterState, utcnow
from tests.services import PG_ADMIN_URL, REDIS_URL
from tests.support import Backend, submit_and_publish, wait_until
from tests.tcp_proxy import TcpProxy

ALL_BACKENDS = ("embedded", "rabbitmq", "redis")
# Neither the session backend's Redis database (1-11, by pid) nor test_faults' (13, 14): a
# dedicated worker must never take a message meant for another worker, nor the other way round.
DEDICATED_REDIS_DB = 12
EMPTY_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
# After a failed pass the indexer waits min(5 s, 10 relay intervals) before trying again.
INDEXER_RETRY_S = 0.5


def echo_succeeds(backend: Backend) -> None:
    job_id = submit_and_publish(backend, "echo", {"still": "serving"})
    assert backend.wait_for_job(job_id, "succeeded", timeout=90).result == {"still": "serving"}


def letters_where(backend: Backend, condition: ColumnElement[bool]) -> list[DeadLetter]:
    with backend.sessions() as session:
        return list(session.scalars(select(DeadLetter).where(condition)))


def the_dead_letter(
    backend: Backend, condition: ColumnElement[bool], what: str, timeout: float = 60
) -> DeadLetter:
    found = wait_until(lambda: letters_where(backend, condition), timeout, f"a dead letter for {what}")
    assert len(found) == 1, f"{len(found)} dead letters for {what}"
    return found[0]


def dead_letter_of_job(backend: Backend, job_id: str, timeout: float = 60) -> DeadLetter:
    return the_dead_letter(backend, DeadLetter.job_id == uuid.UUID(job_id), f"job {job_id}", timeout)


def dead_letter_of_message(backend: Backend, message_id: str) -> DeadLetter:
    return the_dead_letter(backend, DeadLetter.message_id == message_id, f"message {message_id}")


def celery_headers(task: str, message_id: str) -> dict[str, Any]:
    """The headers of a Celery protocol 2 task message."""
    return {
        "lang": "py",
        "task": task,
        "id": message_id,
        "root_id": message_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": "()",
        "kwargsrepr": "{}",
        "origin": "test@dead-letter-capture",
        "ignore_result": True,
    }


def publish_raw(backend: Backend, headers: dict[str, Any], body: bytes) -> None:
    """Send a message to ``default`` as any Celery client could, past Conveyor's publisher."""
    settings = backend.settings
    default = next(queue for queue in work_queues(settings) if queue.name == "default")
    with Connection(settings.broker_url, transport_options=transport_options(settings)) as connection:
        connection.Producer().publish(
            body,
            exchange="default",
            routing_key="default",
            headers=headers,
            content_type="application/json",
            content_encoding="utf-8",
            correlation_id=headers["id"],
            declare=[default],
        )


def assert_kept_whole(letter: DeadLetter, headers: dict[str, Any], body: bytes) -> None:
    """The stored message is the one sent, byte for byte, plus the failure headers."""
    stored = letter.message
    assert decode_body(stored) == body
    assert messages.original_message(stored)["headers"] == headers
    failure = {k: v for k, v in stored["headers"].items() if k.startswith("x-conveyor-")}
    assert failure["x-conveyor-reason"] == letter.reason
    assert failure["x-conveyor-error-type"] == letter.error_type
    assert failure["x-conveyor-error"] == letter.error
    assert failure["x-conveyor-worker"] == letter.worker
    assert failure["x-conveyor-queue"] == "default"
    assert stored["properties"]["correlation_id"] == headers["id"]
    assert (stored["content_type"], stored["content_encoding"]) == ("application/json", "utf-8")
    assert stored["queue"] == "default"


def assert_failed_between(letter: DeadLetter, since: datetime) -> None:
    assert since <= letter.first_failed_at <= letter.last_failed_at <= utcnow()


def assert_from_session_worker(letter: DeadLetter) -> None:
    assert letter.worker and letter.worker.startswith("test-")
    assert letter.state == DeadLetterState.DEAD


def assert_letter_of_job(letter: DeadLetter, job: Any, job_id: str, job_type: str, task_name: str) -> None:
    """What a job's dead letter records: the job, its one attempt, the worker, the message as sent."""
    assert (letter.type, letter.task_name, letter.queue) == (job_type, task_name, "default")
    assert letter.attempts == job.attempts == 1
    assert letter.worker and letter.worker.startswith("test-")
    assert letter.message["headers"]["id"] == f"{job_id}.{job.dispatch}"
    assert json.loads(decode_body(letter.message))[0] == [job_id, job.dispatch]


def dedicated_overrides(name: str, **settings: str) -> dict[str, str]:
    if name == "redis":
        settings["CONVEYOR_BROKER_URL"] = REDIS_URL.rsplit("/", 1)[0] + f"/{DEDICATED_REDIS_DB}"
    return settings


@pytest.fixture
def time_limited(request: pytest.FixtureRequest, own_backend: Callable[..., Backend]) -> Backend:
    """A backend of its own whose jobs may run 3 s, with a worker and a relay."""
    created = own_backend(request.param, **dedicated_overrides(request.param, CONVEYOR_TASK_TIME_LIMIT_S="3"))
    created.start_worker(concurrency=1)
    created.start_relay()
    return created


@pytest.mark.parametrize("time_limited", ALL_BACKENDS, indirect=True)
def test_job_past_its_hard_time_limit_is_dead_lettered_and_the_worker_keeps_serving(
    time_limited: Backend,
) -> None:
    backend = time_limited
    echo_succeeds(backend)
    since = utcnow()

    job_id = submit_and_publish(backend, "sleep", {"ms": 20000})

    letter = dead_letter_of_job(backend, job_id, timeout=30)
    job = backend.wait_for_job(job_id, "dead", timeout=30)
    assert (letter.reason, letter.error_type) == ("time_limit", "TimeLimitExceeded")
    assert letter.error == "The job ran past its hard time limit of 3 s."
    assert_letter_of_job(letter, job, job_id, "sleep", "conveyor.diagnostics.sleep")
    assert_failed_between(letter, since)
    assert job.error_type == "TimeLimitExceeded"
    echo_succeeds(backend)


def test_message_naming_an_unknown_task_is_dead_lettered_byte_for_byte(backend: Backend) -> None:
    since, message_id = utcnow(), str(uuid.uuid4())
    headers = celery_headers("conveyor.nope", message_id)
    body = json.dumps([[], {}, EMPTY_EMBED]).encode()

    publish_raw(backend, headers, body)

    letter = dead_letter_of_message(backend, message_id)
    assert (letter.reason, letter.error_type) == ("unknown_task", "KeyError")
    assert letter.error == "No task named 'conveyor.nope' is registered: 'conveyor.nope'"
    assert (letter.job_id, letter.type, letter.task_name) == (None, None, "conveyor.nope")
    assert (letter.queue, letter.attempts) == ("default", 0)
    assert_from_session_worker(letter)
    assert_failed_between(letter, since)
    assert_kept_whole(letter, headers, body)


def test_undecodable_body_is_dead_lettered_byte_for_byte(backend: Backend) -> None:
    since, message_id = utcnow(), str(uuid.uuid4())
    headers = celery_headers("conveyor.diagnostics.echo", message_id)
    body = b"\xff\xfe not json"

    publish_raw(backend, headers, body)

    letter = dead_letter_of_message(backend, message_id)
    assert (letter.reason, letter.error_type) == ("undecodable", "DecodeError")
    assert letter.error == (
        "The message body does not decode: "
        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    )
    assert (letter.job_id, letter.type, letter.task_name) == (None, "echo", "conveyor.diagnostics.echo")
    assert (letter.queue, letter.attempts) == ("default", 0)
    assert_from_session_worker(letter)
    assert_failed_between(letter, since)
    assert letter.message["body_encoding"] == "base64"
    assert_kept_whole(letter, headers, body)


def worker_process(backend: Backend) -> subprocess.Popen[bytes]:
    return next(p for p in backend.processes if isinstance(p.args, list) and "worker" in p.args)


def test_malformed_body_for_a_known_task_is_dead_lettered_and_the_worker_lives_on(backend: Backend) -> None:
    since, message_id = utcnow(), str(uuid.uuid4())
    headers = celery_headers("conveyor.diagnostics.echo", message_id)
    body = json.dumps({"a": 1}).encode()

    publish_raw(backend, headers, body)

    letter = dead_letter_of_message(backend, message_id)
    assert (letter.reason, letter.error_type) == ("invalid_message", "ValueError")
    assert letter.error == "The task message is malformed: not enough values to unpack (expected 3, got 1)"
    assert (letter.job_id, letter.type, letter.task_name) == (None, "echo", "conveyor.diagnostics.echo")
    assert (letter.queue, letter.attempts) == ("default", 0)
    assert_from_session_worker(letter)
    assert_failed_between(letter, since)
    assert_kept_whole(letter, headers, body)
    assert worker_process(backend).poll() is None
    echo_succeeds(backend)
    assert worker_process(backend).poll() is None


def test_message_for_a_job_with_no_row_is_dead_lettered_as_job_not_found(backend: Backend) -> None:
    since, job_id = utcnow(), str(uuid.uuid4())
    headers = celery_headers("conveyor.diagnostics.echo", f"{job_id}.1")
    body = json.dumps([[job_id, 1], {}, EMPTY_EMBED]).encode()

    publish_raw(backend, headers, body)

    letter = dead_letter_of_job(backend, job_id)
    assert (letter.reason, letter.error_type) == ("job_not_found", "JobNotFoundError")
    assert letter.error == f"No job with id {job_id}."
    assert (letter.message_id, letter.type, letter.task_name) == (
        f"{job_id}.1",
        "echo",
        "conveyor.diagnostics.echo",
    )
    assert (letter.queue, letter.attempts) == ("default", 0)
    assert "JobNotFoundError" in (letter.traceback or "")
    assert_from_session_worker(letter)
    assert_failed_between(letter, since)
    assert_kept_whole(letter, headers, body)


def test_requeued_raw_dead_letter_is_sent_again_whole_and_comes_back_when_it_dies_again(
    backend: Backend,
) -> None:
    message_id = str(uuid.uuid4())
    headers = celery_headers("conveyor.nope", message_id)
    body = json.dumps([[], {}, EMPTY_EMBED]).encode()
    publish_raw(backend, headers, body)
    first = dead_letter_of_message(backend, message_id)

    with backend.sessions.begin() as session:
        dead_letters.requeue(session, first.id, actor="test", reason="try again")

    def died_again() -> DeadLetter | None:
        (letter,) = letters_where(backend, DeadLetter.message_id == message_id)
        return letter if letter.state == DeadLetterState.DEAD else None

    again = wait_until(died_again, 60, f"dead letter {first.id} to die again")
    assert again.id == first.id
    assert again.first_failed_at == first.first_failed_at < again.last_failed_at
    with backend.sessions() as session:
        audit = dead_letters.history(session, first.id)
    assert [(entry.action, entry.actor, entry.reason) for entry in audit] == [
        ("requeue", "test", "try again"),
        ("died-again", "conveyor", None),
    ]
    assert (first.message["exchange"], first.message["routing_key"]) == ("default", "default")
    assert audit[1].details == {"reason": "unknown_task"}
    assert (again.reason, again.error_type, again.task_name) == ("unknown_task", "KeyError", "conveyor.nope")
    assert again.worker and again.worker.startswith("test-")
    assert_kept_whole(again, headers, body)


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
