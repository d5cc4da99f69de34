"""The ocr job end to end, through the API, a relay and real workers: a long document fans out
into page-range jobs that join, a cancel takes the ranges not started, and a bad page fails its
range alone. On the embedded backend and one real broker (OCR does not depend on which)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from jobs import service
from jobs.models import Job
from tests.api_helpers import assert_error
from tests.capture_helpers import dead_letter_of_job
from tests.ocr_documents import character_error_rate, pages_with_text, save_pdf, with_giant_page
from tests.ocr_helpers import stored_text, uploaded
from tests.support import Backend, auth, conveyor, submit, wait_until

pytestmark = pytest.mark.e2e
ON = ["embedded", "redis"]
MAX_ERROR_RATE = 0.02


def children(backend: Backend, parent: str) -> list[Job]:
    with backend.sessions() as session:
        return service.children_of(session, uuid.UUID(parent))


@pytest.mark.parametrize("backend", ON, indirect=True)
def test_a_long_document_fans_out_into_page_ranges_that_join(
    backend: Backend, client: FlaskClient, writer: str, tmp_path: Path
) -> None:
    images, texts = pages_with_text(6, seed=11)
    file_id = uploaded(backend, save_pdf(images, tmp_path / "book.pdf"))

    job_id = submit(client, writer, "ocr", {"file": file_id, "languages": ["eng"]})
    job = backend.wait_for_job(job_id, "succeeded", timeout=180)

    ranges = children(backend, job_id)
    assert [(c.type, c.state, c.payload["first_page"], c.payload["last_page"]) for c in ranges] == [
        ("ocr-pages", "succeeded", 1, 3),
        ("ocr-pages", "succeeded", 4, 6),
    ]
    assert all(c.causation_id == job_id and c.queue == "ocr" for c in ranges)
    result: dict[str, Any] = job.result or {}
    assert result["pages"] == 6 and job.progress == 100
    assert 0 < result["peak_rss_mb"]["worker"] < 300
    assert character_error_rate(stored_text(backend, result).decode(), " ".join(texts)) < MAX_ERROR_RATE
    shown = client.get(f"/v1/jobs/{job_id}", headers=auth(writer)).get_json()
    assert shown["result"]["outputs"]["pdf"]["file"] == result["outputs"]["pdf"]["file"]


@pytest.mark.parametrize("backend", ON, indirect=True)
def test_a_page_that_keeps_failing_fails_its_range_alone_and_the_parent_names_it(
    backend: Backend, client: FlaskClient, writer: str, tmp_path: Path
) -> None:
    images, _ = pages_with_text(6, seed=12)
    file_id = uploaded(backend, with_giant_page(images, 5, tmp_path / "bad.pdf"))

    job_id = submit(client, writer, "ocr", {"file": file_id})
    job = backend.wait_for_job(job_id, "dead", timeout=180)

    good, bad = children(backend, job_id)
    assert (good.state, bad.state) == ("succeeded", "dead")
    assert "Page 5 at 300 dpi would be 60000 x 60000 pixels" in (bad.error_message or "")
    assert dead_letter_of_job(backend, str(bad.id)).reason == "permanent_error"
    assert job.error_message is not None and f"pages 4-6 (job {bad.id})" in job.error_message
    assert "The other pages' outputs are kept under" in job.error_message
    kept = backend.settings.data_dir / "storage" / "ocr" / job_id / "pages"
    assert sorted(path.name for path in kept.glob("*.json")) == [f"0000{n}.json" for n in (1, 2, 3, 4)]

    retried = client.post(f"/v1/jobs/{job_id}/retry", headers=auth(writer))
    assert retried.status_code == 202, retried.get_json()
    wait_until(lambda: backend.job(str(bad.id)).dispatch > bad.dispatch, 30, "the bad range to be requeued")
    again = backend.wait_for_job(job_id, "dead", timeout=180)
    assert again.dispatch > job.dispatch and backend.job(str(good.id)).dispatch == good.dispatch


@pytest.mark.parametrize("name", ON)
def test_cancelling_the_parent_cancels_the_ranges_not_started(
    own_backend: Callable[..., Backend], name: str, tmp_path: Path
) -> None:
    backend = own_backend(name, CONVEYOR_OCR_FANOUT_PAGES="1")
    backend.start_worker(concurrency=1)
    backend.start_relay()
    images, _ = pages_with_text(8, seed=13)
    file_id = uploaded(backend, save_pdf(images, tmp_path / "long.pdf"))
    client = create_app(backend.settings).test_client()
    token = backend.token("jobs:write", "jobs:read")

    job_id = submit(client, token, "ocr", {"file": file_id})
    wait_until(lambda: any(c.state == "running" for c in children(backend, job_id)), 120, "a range running")
    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(token))
    assert response.status_code == 200, response.get_json()

    assert backend.job(job_id).state == "cancelled"

    def stopped() -> list[Job]:
        found = children(backend, job_id)
        return found if found and all(c.state in ("succeeded", "cancelled") for c in found) else []

    settled = wait_until(stopped, 60, "every range to stop")
    never_started = [c for c in settled if c.state == "cancelled" and c.started_at is None]
    assert len(settled) == 8 and len(never_started) >= 5


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_page_range_cannot_be_submitted_by_a_caller(client: FlaskClient, writer: str) -> None:
    payload = {"file": str(uuid.uuid4()), "parent": str(uuid.uuid4()), "first_page": 1, "last_page": 2}
    response = client.post("/v1/jobs", json={"type": "ocr-pages", "payload": payload}, headers=auth(writer))
    assert "submitted by the job that fans them out" in str(assert_error(response, 422))


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_languages_are_checked_against_the_installed_packs(client: FlaskClient, writer: str) -> None:
    body = assert_error(
        client.post("/v1/jobs", json={"type": "ocr", "payload": _missing_pack()}, headers=auth(writer)), 422
    )
    assert "No language pack for klingon" in str(body)
    types = {t["name"]: t for t in client.get("/v1/job-types", headers=auth(writer)).get_json()}
    assert "eng" in types["ocr"]["languages"] and "osd" not in types["ocr"]["languages"]
    bad = {"file": str(uuid.uuid4()), "psm": 2, "dpi": 5000}
    errors = str(
        assert_error(client.post("/v1/jobs", json={"type": "ocr", "payload": bad}, headers=auth(writer)), 422)
    )
    assert "psm" in errors and "dpi" in errors


def _missing_pack() -> dict[str, Any]:
    return {"file": str(uuid.uuid4()), "languages": ["eng", "klingon"]}


def test_an_operator_uploads_a_scan_and_waits_for_its_text(embedded: Backend, tmp_path: Path) -> None:
    embedded.start_worker()
    embedded.start_relay()
    images, texts = pages_with_text(2, seed=14)
    scan = save_pdf(images, tmp_path / "scan.pdf")

    file_id = conveyor(embedded, "files", "upload", str(scan)).stdout.strip()
    payload = json.dumps({"file": file_id, "languages": ["eng"]})
    done = conveyor(embedded, "submit", "ocr", "--payload", payload, "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["state"], job["result"]["pages"]) == ("succeeded", 2)

    text = tmp_path / "scan.txt"
    got = conveyor(embedded, "files", "download", job["result"]["outputs"]["text"]["file"], "-o", str(text))
    assert got.returncode == 0, got.stderr
    assert character_error_rate(text.read_text(), " ".join(texts)) < MAX_ERROR_RATE
