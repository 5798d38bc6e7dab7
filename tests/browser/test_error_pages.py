"""What a person sees when a page is refused or missing (issue 11): a page of the
app, with its top bar, the reason and a way back that works from the keyboard."""

import pytest

from tests.browser.conftest import log_in, screenshot
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


def test_an_annotator_on_a_lead_page_is_told_why_and_goes_back(page, live_server):
    # given an annotator who opens the batches from a link
    UserFactory(username="anna", content_warning_acknowledged_at="2026-01-01T00:00Z")
    log_in(page, live_server, "anna", lands_on="/work/")

    # when she opens a lead's page
    response = page.goto(f"{live_server.url}/batches/")

    # then the app says it is for leads, in its own layout
    assert response is not None
    assert response.status == 403
    assert page.title() == "You cannot open this page · Aegis Studio"
    assert page.locator(".topbar .brand").inner_text() == "Aegis Studio"
    assert page.get_by_role("navigation", name="Main").is_visible()
    assert page.locator(".error-message").inner_text() == "This page is for leads."
    screenshot(page, "error-403")

    # when she takes the way back with the keyboard
    page.get_by_role("link", name="Go to labelling").focus()
    page.keyboard.press("Enter")

    # then she is labelling again
    page.wait_for_url(f"{live_server.url}/work/")


def test_a_missing_page_is_a_page_of_the_app(page, live_server):
    UserFactory(username="anna", content_warning_acknowledged_at="2026-01-01T00:00Z")
    log_in(page, live_server, "anna", lands_on="/work/")

    response = page.goto(f"{live_server.url}/no-such-page-here/")

    assert response is not None
    assert response.status == 404
    assert page.locator("h1").inner_text() == "There is no such page"
    assert page.get_by_role("navigation", name="Main").is_visible()
    assert page.locator(".error-page .code").inner_text() == "/no-such-page-here/"
    screenshot(page, "error-404")
