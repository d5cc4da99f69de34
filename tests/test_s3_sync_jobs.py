"""s3-sync as a job: submitted over HTTP, run by a real worker, refused at submit when wrong."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from jobs.db import Database
from jobs.models import DeadLetter, Job, utcnow
from jobs.scheduler.entries import schedules
from jobs.scheduler.runs import SCHEDULED, Slot, fire, run_now
from jobs.storage import open_storage
from tests.dead_letter_helpers import dead_letter_of
from tests.s3_server import S3Server
from tests.storage_helpers import contents, put
from tests.support import Backend, auth, submit


def test_a_sync_job_copies_a_folder_to_s3_and_records_its_counts(
    backend: Backend, client: FlaskClient, writer: str, s3_server: S3Server
) -> None:
    folder = backend.files_root / f"sync-source-{backend.name}"
    source = open_storage(f"file://{folder}", backend.settings)
    for key in ("one.txt", "two/three.txt"):
        put(source, key, key.encode())
    target = f"{s3_server.fresh_prefix()}/copy"

    job_id = submit(client, writer, "s3-sync", {"source": source.url, "destination": target})
    job = backend.wait_for_job(job_id, "succeeded", timeout=60)

    assert job.result is not None
    assert (job.result["copied"], job.result["bytes"], job.result["errors"]) == (2, 20, [])
    assert job.progress == 100
    assert contents(open_storage(target, backend.settings)) == contents(source)


def test_a_sync_from_a_bucket_that_does_not_exist_is_dead_lettered_naming_it(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    folder = backend.files_root / "sync-target"
    payload = {"source": "s3://no-such-bucket-conveyor/x", "destination": f"file://{folder}"}
    job_id = submit(client, writer, "s3-sync", payload, max_attempts=3)

    job = backend.wait_for_job(job_id, "dead", timeout=60)
    assert job.attempts == 1
    assert "no-such-bucket-conveyor" in (job.error_message or "")
    with backend.sessions() as session:
        letter = session.get(DeadLetter, uuid.UUID(dead_letter_of(backend, job_id)))
        assert letter is not None and letter.reason == "permanent_error"


def refused(client: FlaskClient, writer: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"type": "s3-sync", "payload": payload}, headers=auth(writer))
    assert response.status_code == 422, response.get_json()
    errors: dict[str, Any] = response.get_json()["errors"]["json"]["payload"]
    return errors


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({"source": "s3://ab/x", "destination": "s3://bucket/y"}, "source", "valid bucket"),
        ({"source": "ftp://host/x", "destination": "s3://bucket/y"}, "source", "not a storage URL"),
        ({"source": "s3://bucket/x", "destination": "s3://bucket/x"}, "destination", "is the source"),
        ({"source": "s3://bucket/x", "destination": "s3://bucket/x/y"}, "destination", "inside the source"),
        (
            {"source": "s3://bucket/x/y", "destination": "s3://bucket/x"},
            "destination",
            "inside the destination",
        ),
        ({"source": "s3://bucket/x", "destination": "file:///etc"}, "destination", "CONVEYOR_FILE_ROOTS"),
        ({"source": "s3://bucket/x", "destination": "s3://b2b/y", "compare": "md5"}, "compare", "one of"),
        ({"source": "s3://bucket/x", "destination": "s3://b2b/y", "transfers": 0}, "transfers", "greater"),
    ],
)
def test_a_bad_sync_is_refused_at_submit_naming_the_field(
    client: FlaskClient, writer: str, payload: dict[str, Any], field: str, says: str
) -> None:
    errors = refused(client, writer, payload)
    assert says.lower() in str(errors[field]).lower()


def test_the_nightly_offsite_sync_copies_the_platforms_storage(
    backend: Backend, client: FlaskClient, writer: str, s3_server: S3Server
) -> None:
    offsite = f"{s3_server.fresh_prefix()}/offsite"
    settings = dataclasses.replace(backend.settings, offsite_sync_url=offsite)
    uploaded = client.post("/v1/files?name=a.txt", data=b"kept twice", headers=auth(writer))
    assert uploaded.status_code == 201

    with backend.sessions.begin() as session:
        job_id = run_now(session, settings, schedules(settings)["offsite-sync"], actor="test").job_id
    assert job_id is not None
    job = backend.wait_for_job(job_id, "succeeded", timeout=60)
    assert job.result is not None and job.result["copied"] >= 1
    copied = contents(open_storage(offsite, backend.settings))
    assert copied[f"files/{uploaded.get_json()['id']}"] == b"kept twice"


def test_a_night_whose_offsite_sync_has_not_finished_starts_no_other(database: Database) -> None:
    settings = dataclasses.replace(database.settings, offsite_sync_url="s3://offsite-bucket/conveyor")
    schedule = schedules(settings)["offsite-sync"]
    with database.sessions.begin() as session:
        first = fire(session, settings, schedule, Slot(utcnow(), SCHEDULED), fired_by="test")
    with database.sessions.begin() as session:
        second = fire(session, settings, schedule, Slot(utcnow(), SCHEDULED), fired_by="test")
    assert first is not None and first.job_id is not None  # no worker runs here: it stays queued
    assert second is not None and second.job_id is None
    assert second.skipped == f"its previous run, job {first.job_id}, is still queued."
    with database.sessions() as session:
        jobs = session.scalars(select(Job.id).where(Job.correlation_id == "schedule:offsite-sync")).all()
    assert jobs == [first.job_id]
