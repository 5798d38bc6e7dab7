"""What a person sees when their login is locked after too many failures (issue
13): the login page of the app, saying why and until when."""

from typing import Any

import pytest
from django.test import Client

from tests.browser.conftest import screenshot
from tests.factories import AdminFactory, UserFactory

pytestmark = pytest.mark.browser


def test_a_locked_login_is_told_why_on_the_login_page(
    page: Any, live_server: Any, settings: Any
) -> None:
    # given the lockout on (the test settings turn it off) after three failures
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="anna")

    # when she mistypes her password three times
    page.goto(f"{live_server.url}/accounts/login/")
    for _ in range(3):
        page.get_by_label("Username").fill("anna")
        page.get_by_label("Password").fill("wrong")
        with page.expect_navigation():
            page.keyboard.press("Enter")

    # then the login page says the account is locked, in the app's layout
    alert = page.locator("#login-locked")
    assert alert.is_visible()
    assert alert.inner_text().startswith(
        "Too many failed logins for this account: logging in is locked until"
    )
    assert page.title() == "Log in · Aegis Studio"
    assert page.locator(".topbar .brand").inner_text() == "Aegis Studio"
    assert page.get_by_label("Username").input_value() == "anna"
    screenshot(page, "login-locked")


def test_an_admin_sees_the_locked_account_and_unlocks_it(
    page: Any, live_server: Any, settings: Any
) -> None:
    # given anna locked out (from this address too: the browser's is the same)
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="anna")
    for _ in range(3):
        Client(REMOTE_ADDR="127.0.0.1").post(
            "/accounts/login/", {"username": "anna", "password": "wrong"}
        )
    # and an admin signed in already (a login page would refuse this address)
    admin = Client()
    admin.force_login(AdminFactory(username="root"))
    page.context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": admin.cookies["sessionid"].value,
                "url": live_server.url,
            }
        ]
    )

    # when she opens the batches
    page.goto(f"{live_server.url}/batches/")

    # then the panel lists the account and the address
    panel = page.locator("#locked-accounts")
    assert panel.get_by_role("heading").inner_text() == "Locked accounts 2"
    rows = panel.locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(1).inner_text() == "anna"
    assert rows.nth(1).locator("td").nth(2).inner_text() == "127.0.0.1"
    screenshot(page, "locked-accounts")

    # when she unlocks the account
    with page.expect_navigation():
        rows.nth(0).get_by_role("button", name="Unlock").click()

    # then the page says so and nothing is locked any more
    assert page.url == f"{live_server.url}/batches/"
    assert page.locator(".toast").inner_text() == "Unlocked the account anna."
    assert page.locator("#locked-accounts").count() == 0
