"""Playwright against Debian's Chromium (browsers cannot be downloaded here)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls made by the
# tests themselves are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (make browser)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server) -> Iterator:
    context = browser.new_context(viewport={"width": 1366, "height": 850})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def log_in(
    page,
    live_server,
    username: str,
    *,
    lands_on: str | None = "/batches/",
    password: str | None = None,
) -> None:
    """Log in on the login page as a person would; wait until `lands_on` opens
    (None: until the browser has left the login page and the next page has loaded;
    waiting only for the network to be idle could return before the form was sent,
    and the next navigation would cancel the login)."""
    from tests.factories import PASSWORD

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password or PASSWORD)
    page.keyboard.press("Enter")
    if lands_on is None:
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        page.wait_for_load_state("networkidle")
    else:
        page.wait_for_url(f"{live_server.url}{lands_on}")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
