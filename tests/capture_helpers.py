"""What the dead-letter capture tests share: raw messages, and reading back what was captured."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from kombu import Connection
from sqlalchemy import ColumnElement, select

from jobs import messages
from jobs.broker.config import transport_options
from jobs.broker.queues import work_queues
from jobs.messages import decode_body
from jobs.models import DeadLetter, DeadLetterState, utcnow
from tests.services import REDIS_URL
from tests.support import Backend, submit_and_publish, wait_until

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
