"""The ops console's rules, without a browser: login, cookies, CSRF, scopes, and bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from api import create_app
from api.ops.console import COOKIE, csrf_value
from jobs import tokens
from tests.api_helpers import echo_job, submitted
from tests.support import Backend

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
    ],
)
def test_bad_input_is_a_page_that_says_what_is_wrong(
    backend: Backend, browser_like: FlaskClient, path: str, status: int, said: str
) -> None:
    response = signed_in(browser_like, backend.token("ops")).get(path)

    assert response.status_code == status
    assert said in response.get_data(as_text=True)


def test_every_console_page_forbids_framing_and_scripts_from_elsewhere(
    backend: Backend, browser_like: FlaskClient
) -> None:
    signed_in(browser_like, backend.token("ops"))
    for path in ("/ops/login", "/ops/dead-letters", "/ops/jobs", "/ops/schedules", "/ops/backups"):
        response = browser_like.get(path)
        assert response.status_code == 200, path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
