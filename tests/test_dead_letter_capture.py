"""Every message a worker gives up on is captured whole, with why, and can be sent again."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable

import pytest

from jobs import dead_letters
from jobs.models import DeadLetter, DeadLetterState, utcnow
from tests.capture_helpers import (
    ALL_BACKENDS,
    EMPTY_EMBED,
    assert_failed_between,
    assert_from_session_worker,
    assert_kept_whole,
    assert_letter_of_job,
    celery_headers,
    dead_letter_of_job,
    dead_letter_of_message,
    dedicated_overrides,
    echo_succeeds,
    letters_where,
    publish_raw,
)
from tests.support import Backend, child_pids, submit_and_publish, wait_until


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
    worker = backend.processes[0].pid
    (pool_process,) = child_pids(worker)

    job_id = submit_and_publish(backend, "sleep", {"ms": 20000})

    letter = dead_letter_of_job(backend, job_id, timeout=30)
    job = backend.wait_for_job(job_id, "dead", timeout=30)
    assert (letter.reason, letter.error_type) == ("time_limit", "TimeLimitExceeded")
    assert letter.error == "The job ran past its hard time limit of 3 s."
    assert_letter_of_job(letter, job, job_id, "sleep", "conveyor.diagnostics.sleep")
    assert_failed_between(letter, since)
    assert job.error_type == "TimeLimitExceeded"
    echo_succeeds(backend)
    assert pool_process not in child_pids(worker)


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
