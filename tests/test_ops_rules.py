"""The ops console's rules, without a browser: login, cookies, CSRF, scopes, and bad input."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from api import create_app
from api.ops.console import COOKIE, csrf_value
from jobs import tokens
from jobs.models import AuditEntry, DeadLetter, utcnow
from tests.api_helpers import echo_job, submitted
from tests.support import Backend, auth

FAR_FUTURE = "2999-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    created = Backend.create("embedded", tmp_path_factory.mktemp("ops-rules"))
    yield created
    created.stop()


@pytest.fixture
def browser_like(backend: Backend) -> FlaskClient:
    return create_app(backend.settings).test_client()


def signed_in(client: FlaskClient, token: str) -> FlaskClient:
    client.set_cookie(COOKIE, token, path="/ops")
    return client


def waiting_job(backend: Backend, client: FlaskClient) -> str:
    return submitted(client, backend.token("jobs:write"), echo_job(run_at=FAR_FUTURE))


def test_a_page_without_a_session_sends_the_browser_to_the_login(browser_like: FlaskClient) -> None:
    response = browser_like.get("/ops/jobs?state=dead")

    assert response.status_code == 302
    assert response.headers["Location"] == "/ops/login?next=/ops/jobs?state%3Ddead"


def test_a_login_sets_an_http_only_strict_cookie_and_goes_only_to_console_pages(
    backend: Backend, browser_like: FlaskClient
) -> None:
    page = browser_like.get("/ops/login").get_data(as_text=True)
    nonce = re.search(r'name="csrf" value="([^"]+)"', page)
    assert nonce

    response = browser_like.post(
        "/ops/login", data={"token": backend.token("ops"), "csrf": nonce[1], "next": "https://evil.example/"}
    )

    assert response.status_code == 303 and response.headers["Location"] == "/ops/dead-letters"
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith(f"{COOKIE}="))
    assert all(part in cookie for part in ("HttpOnly", "SameSite=Strict", "Path=/ops"))


def test_a_login_without_its_forms_value_or_with_a_bad_token_is_refused(
    backend: Backend, browser_like: FlaskClient
) -> None:
    no_nonce = browser_like.post("/ops/login", data={"token": backend.token("ops")})
    page = browser_like.get("/ops/login").get_data(as_text=True)
    nonce = re.search(r'name="csrf" value="([^"]+)"', page)
    assert nonce
    bad_token = browser_like.post("/ops/login", data={"token": "cvr_nope", "csrf": nonce[1]})

    assert no_nonce.status_code == 403 and COOKIE not in str(no_nonce.headers)
    assert bad_token.status_code == 401 and "not valid" in bad_token.get_data(as_text=True)


def test_an_action_without_the_csrf_value_is_refused_and_changes_nothing(
    backend: Backend, browser_like: FlaskClient
) -> None:
    token = backend.token("ops", "jobs:write")
    job_id = waiting_job(backend, browser_like)
    signed_in(browser_like, token)

    refused = browser_like.post(f"/ops/jobs/{job_id}/cancel")
    forged = browser_like.post(f"/ops/jobs/{job_id}/cancel", data={"csrf": csrf_value("another token")})
    assert backend.job(job_id).state == "queued"
    done = browser_like.post(f"/ops/jobs/{job_id}/cancel", data={"csrf": csrf_value(token)})

    assert refused.status_code == forged.status_code == 403
    assert "CSRF" in refused.get_data(as_text=True)
    assert done.status_code == 303 and backend.job(job_id).state == "cancelled"


def test_a_read_only_token_may_look_but_not_act(backend: Backend, browser_like: FlaskClient) -> None:
    token = backend.token("jobs:read")
    job_id = waiting_job(backend, browser_like)
    signed_in(browser_like, token)

    page = browser_like.get(f"/ops/jobs/{job_id}")
    acted = browser_like.post(f"/ops/jobs/{job_id}/cancel", data={"csrf": csrf_value(token)})

    assert page.status_code == 200 and "Cancel" not in page.get_data(as_text=True)
    assert acted.status_code == 403 and "read-only" in acted.get_data(as_text=True)
    assert backend.job(job_id).state == "queued"


def test_a_token_that_may_not_read_and_a_revoked_one_are_refused(
    backend: Backend, browser_like: FlaskClient
) -> None:
    writer_only = signed_in(browser_like, backend.token("jobs:write")).get("/ops/jobs")
    revoked = backend.token("ops")
    with backend.sessions.begin() as session:
        tokens.revoke(session, tokens.authenticate(session, revoked).id)  # type: ignore[union-attr]
    after_revoke = signed_in(create_app(backend.settings).test_client(), revoked).get("/ops/jobs")

    assert writer_only.status_code == 403 and "jobs:read or ops" in writer_only.get_data(as_text=True)
    assert after_revoke.status_code == 302


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("/ops/dead-letters?since=yesterday", 422, "since"),
        ("/ops/dead-letters?state=gone", 422, "state"),
        ("/ops/jobs?id=not-a-uuid", 422, "not a job id"),
        ("/ops/jobs?state=sleeping", 422, "state"),
        ("/ops/jobs?cursor=garbage", 400, "cursor"),
        ("/ops/jobs/00000000-0000-0000-0000-000000000000", 404, "No job"),
        ("/ops/dead-letters/00000000-0000-0000-0000-000000000000", 404, "No dead letter"),
        ("/ops/jobs/not-a-uuid", 404, "Nothing is at"),
    ],
)
def test_bad_input_is_a_page_that_says_what_is_wrong(
    backend: Backend, browser_like: FlaskClient, path: str, status: int, said: str
) -> None:
    response = signed_in(browser_like, backend.token("ops")).get(path)

    assert response.status_code == status and response.mimetype == "text/html"
    assert said in response.get_data(as_text=True)


def test_a_form_sent_after_the_session_ended_comes_back_to_its_page_once_signed_in(
    backend: Backend, browser_like: FlaskClient
) -> None:
    job_id = waiting_job(backend, browser_like)
    page = f"http://localhost/ops/jobs/{job_id}"

    response = browser_like.post(f"/ops/jobs/{job_id}/cancel", headers={"Referer": page})

    assert response.status_code == 302
    assert response.headers["Location"] == f"/ops/login?next=/ops/jobs/{job_id}"
    assert backend.job(job_id).state == "queued"


def dead_letter_row(backend: Backend, job_type: str) -> uuid.UUID:
    """A waiting dead letter of `job_type` with no job, as the relay would index a raw message."""
    now = utcnow()
    letter = DeadLetter(
        message_id=uuid.uuid4().hex, queue="maintenance", type=job_type, reason="permanent_error",
        error_type="PermanentError", error="test", first_failed_at=now, last_failed_at=now, message={},
    )  # fmt: skip
    with backend.sessions.begin() as session:
        session.add(letter)
    return letter.id


def test_requeueing_a_restore_backup_dead_letter_needs_admin_in_the_console_and_the_api(
    backend: Backend, browser_like: FlaskClient
) -> None:
    letter_id = dead_letter_row(backend, "restore-backup")
    ops = backend.token("ops")
    signed_in(browser_like, ops)

    one = browser_like.post(f"/ops/dead-letters/{letter_id}/requeue", data={"csrf": csrf_value(ops)})
    bulk = browser_like.post(
        "/ops/dead-letters/requeue",
        data={"csrf": csrf_value(ops), "type": "restore-backup", "reason": "try", "confirm": "1"},
    )
    api = browser_like.post(f"/v1/dead-letters/{letter_id}/requeue", json={}, headers=auth(ops))

    assert one.status_code == bulk.status_code == api.status_code == 403
    assert "lacks the &#39;admin&#39; scope" in one.get_data(as_text=True) and one.mimetype == "text/html"
    with backend.sessions() as session:
        assert session.get(DeadLetter, letter_id).state == "dead"  # type: ignore[union-attr]


def test_cancel_needs_jobs_write_as_the_api_does_and_is_audited(
    backend: Backend, browser_like: FlaskClient
) -> None:
    job_id = waiting_job(backend, browser_like)
    ops_only, operator = backend.token("ops"), backend.token("ops", "jobs:write")

    refused = signed_in(browser_like, ops_only).post(
        f"/ops/jobs/{job_id}/cancel", data={"csrf": csrf_value(ops_only)}
    )
    done = signed_in(browser_like, operator).post(
        f"/ops/jobs/{job_id}/cancel", data={"csrf": csrf_value(operator)}
    )

    assert refused.status_code == 403 and "&#39;jobs:write&#39;" in refused.get_data(as_text=True)
    assert done.status_code == 303 and backend.job(job_id).state == "cancelled"
    with backend.sessions() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "job-cancel")).all()
    assert any(
        e.details == {"job_id": job_id, "state": "queued"} and e.actor.startswith("token:test:")
        for e in entries
    )


def test_every_console_page_forbids_framing_and_scripts_from_elsewhere(
    backend: Backend, browser_like: FlaskClient
) -> None:
    signed_in(browser_like, backend.token("ops"))
    for path in ("/ops/login", "/ops/dead-letters", "/ops/jobs", "/ops/schedules", "/ops/backups"):
        response = browser_like.get(path)
        assert response.status_code == 200, path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
