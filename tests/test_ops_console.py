"""The ops console in a real browser: an operator's flows, end to end on RabbitMQ."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from api import create_app
from tests.browser import log_in, screenshot
from tests.conftest import wait_for_worker
from tests.dead_letter_helpers import dead_letter_of, marker, submit_failing
from tests.services import require_services
from tests.support import Backend, serving, submit

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, str]]:
    """A backend with a worker and a relay, and its API (with the console) on a real server."""
    require_services("rabbitmq")
    backend = Backend.create("rabbitmq", tmp_path_factory.mktemp("console"))
    try:
        backend.start_worker()
        backend.start_relay()
        wait_for_worker(backend)
        with serving(create_app(backend.settings)) as base_url:
            yield backend, base_url
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def api(console: tuple[Backend, str]) -> FlaskClient:
    return create_app(console[0].settings).test_client()


@pytest.fixture(scope="module")
def operator_token(console: tuple[Backend, str]) -> str:
    return console[0].token("ops", "jobs:write", "jobs:read")


def dead_job(console: tuple[Backend, str], api: FlaskClient, token: str, message: str) -> tuple[str, str]:
    job_id = submit_failing(api, token, {"permanent": True, "message": message})
    return job_id, dead_letter_of(console[0], job_id)


def test_an_operator_requeues_a_dead_letter_with_an_edited_payload_and_it_succeeds(
    console: tuple[Backend, str], api: FlaskClient, operator_token: str, page: Page
) -> None:
    backend, base_url = console
    message = marker()
    job_id, letter_id = dead_job(console, api, operator_token, message)
    log_in(page, base_url, operator_token)
    screenshot(page, "dead-letters")

    page.fill("input[name=error]", message)
    page.click("button:has-text('Filter')")
    expect(page.locator("#matched")).to_have_text("1")
    page.click(f"a[href='/ops/dead-letters/{letter_id}']")
    screenshot(page, "dead-letter")
    edited = json.dumps({"permanent": False, "message": message})
    page.fill("textarea[name=payload]", edited)
    page.click("form.requeue button:has-text('Requeue')")

    expect(page).to_have_url(re.compile(f"/ops/jobs/{job_id}$"))
    expect(page.locator(".notice")).to_contain_text("with the edited payload")
    assert backend.wait_for_job(job_id, "succeeded").payload["permanent"] is False
    page.reload()
    expect(page.locator("#job-state")).to_have_text("succeeded")
    screenshot(page, "job")


def test_a_bulk_requeue_shows_the_dry_run_count_first_and_needs_a_reason(
    console: tuple[Backend, str], api: FlaskClient, operator_token: str, page: Page
) -> None:
    message = marker()
    letters = [dead_job(console, api, operator_token, message)[1] for _ in range(2)]
    log_in(page, base_url := console[1], operator_token)
    page.goto(f"{base_url}/ops/dead-letters?error={message}")

    page.fill("form.bulk input[name=reason]", "fixed the upstream bug")
    page.click("form.bulk button")
    expect(page.locator("#dry-run-count")).to_have_text("2")
    screenshot(page, "bulk-requeue-confirm")
    page.click("button:has-text('Requeue 2')")

    expect(page.locator(".notice")).to_contain_text("Requeued 2 of 2")
    for letter_id in letters:
        page.goto(f"{base_url}/ops/dead-letters/{letter_id}")
        expect(page.locator("#letter-state")).to_have_text("requeued")
        expect(page.locator("table.list")).to_contain_text("fixed the upstream bug")


def test_a_purge_takes_a_reason_and_keeps_the_audit_trail(
    console: tuple[Backend, str], api: FlaskClient, operator_token: str, page: Page
) -> None:
    _, letter_id = dead_job(console, api, operator_token, marker())
    log_in(page, base_url := console[1], operator_token)
    page.goto(f"{base_url}/ops/dead-letters/{letter_id}")

    page.fill("input[name=reason]:near(button:has-text('Purge'))", "a test message, not worth keeping")
    page.click("button:has-text('Purge')")

    expect(page.locator(".notice")).to_contain_text("Purged")
    expect(page.locator("#letter-state")).to_have_text("purged")
    expect(page.locator("table.list")).to_contain_text("token:test:")
    expect(page.locator("table.list")).to_contain_text("a test message, not worth keeping")


def test_an_operator_cancels_a_running_sleep_job(
    console: tuple[Backend, str], api: FlaskClient, operator_token: str, page: Page
) -> None:
    backend, base_url = console
    job_id = submit(api, operator_token, "sleep", {"ms": 60_000})
    backend.wait_for_job(job_id, "running")
    log_in(page, base_url, operator_token)
    page.goto(f"{base_url}/ops/jobs?id={job_id}")
    expect(page.locator("#job-state")).to_have_text("running")

    page.click("button:has-text('Cancel')")

    expect(page.locator(".notice")).to_be_visible()
    assert backend.wait_for_job(job_id, "cancelled", timeout=30).state == "cancelled"


def test_a_read_only_token_sees_the_pages_but_no_buttons(
    console: tuple[Backend, str], api: FlaskClient, operator_token: str, page: Page
) -> None:
    backend, base_url = console
    job_id, letter_id = dead_job(console, api, operator_token, marker())
    log_in(page, base_url, backend.token("jobs:read"))

    pages = (f"/ops/dead-letters/{letter_id}", f"/ops/jobs/{job_id}", "/ops/dead-letters", "/ops/schedules")
    for path in pages:
        page.goto(f"{base_url}{path}")
        expect(page.locator("header .who")).to_contain_text("read-only")
        expect(page.locator("main form[method=post]")).to_have_count(0)
    screenshot(page, "jobs-read-only")


def test_an_operator_pauses_resumes_and_runs_a_schedule_now(
    console: tuple[Backend, str], operator_token: str, page: Page
) -> None:
    backend, base_url = console
    log_in(page, base_url, operator_token)
    page.goto(f"{base_url}/ops/schedules")
    row = page.locator("#schedule-purge-idempotency-keys")

    row.locator("button:has-text('Pause')").click()
    expect(row).to_contain_text("paused by token:test:")
    screenshot(page, "schedules")
    row.locator("button:has-text('Resume')").click()
    expect(row.locator("button:has-text('Pause')")).to_be_visible()
    row.locator("button:has-text('Run now')").click()

    expect(page).to_have_url(re.compile(r"/ops/jobs/[0-9a-f-]{36}$"))
    backend.wait_for_job(page.url.rsplit("/", 1)[1], "succeeded")
    page.goto(f"{base_url}/ops/backups")
    expect(page.locator("h1")).to_have_text("Backups")
    screenshot(page, "backups")


def test_a_post_from_the_signed_in_browser_without_the_csrf_value_is_refused(
    console: tuple[Backend, str], api: FlaskClient, operator_token: str, page: Page
) -> None:
    _, letter_id = dead_job(console, api, operator_token, marker())
    log_in(page, base_url := console[1], operator_token)

    answer = page.request.post(f"{base_url}/ops/dead-letters/{letter_id}/purge", form={"reason": "forged"})

    assert answer.status == 403 and "CSRF" in answer.text()
    page.goto(f"{base_url}/ops/dead-letters/{letter_id}")
    expect(page.locator("#letter-state")).to_have_text("dead")


def test_swagger_ui_authorizes_with_a_token_and_sends_a_request(
    console: tuple[Backend, str], operator_token: str, page: Page
) -> None:
    page.goto(f"{console[1]}/docs")
    page.click("button.authorize")
    page.fill(".modal-ux input", operator_token)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")
    page.click("#operations-job-types-get_v1_job_types .opblock-summary")
    page.click("#operations-job-types-get_v1_job_types button.execute")

    status = page.locator(
        "#operations-job-types-get_v1_job_types .live-responses-table tr.response .response-col_status"
    )
    expect(status.first).to_have_text("200")
    screenshot(page, "swagger-ui")
