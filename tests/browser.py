"""A real Chromium (Debian's) driven by Playwright, and the console served to it.

Playwright's own browser download does not work here, so it drives `/usr/bin/chromium`. Each
page a test looks at is saved as a screenshot under `var/screenshots/` for a reviewer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; `bash .ci/services.sh` installs Debian's chromium"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root, as CI does.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"), full_page=True
    )


def log_in(page: Page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/ops/")
    screenshot(page, "login")
    page.fill("input[name=token]", token)
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile(r".*/ops/(dead-letters)?$"))
