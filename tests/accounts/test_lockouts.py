"""Logins lock after repeated failures, per username and per address (issue 13)."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts import lockouts
from accounts.lockouts import Attempt, Lock
from accounts.models import User
from tests.factories import PASSWORD, AdminFactory, LeadFactory, UserFactory

LOGIN = "/accounts/login/"
LIMIT = 4
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
COOL_OFF = timedelta(minutes=15)


@pytest.fixture(autouse=True)
def axes_on(settings: Any) -> None:
    """The lockout as in production (the test settings turn it off), with a small
    limit so each test stays short."""
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = LIMIT


def from_address(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def fail_login(client: Client, username: str, times: int) -> list[int]:
    return [
        client.post(LOGIN, {"username": username, "password": "wrong"}).status_code
        for _ in range(times)
    ]


def log_in(client: Client, username: str) -> Any:
    return client.post(LOGIN, {"username": username, "password": PASSWORD})


def logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


# --- locking -------------------------------------------------------------------------


def test_failures_under_the_limit_leave_the_login_open(db: None) -> None:
    # given
    UserFactory(username="anna")
    client = from_address("10.0.0.1")

    # when
    codes = fail_login(client, "anna", LIMIT - 1)
    response = log_in(client, "anna")

    # then
    assert codes == [200] * (LIMIT - 1)
    assert response.status_code == 302
    assert logged_in(client)


def test_a_username_locks_after_the_limit_from_every_address(db: None) -> None:
    # given
    UserFactory(username="anna")
    UserFactory(username="bob")
    attacker = from_address("10.0.0.1")

    # when the attacker fails the limit for anna
    codes = fail_login(attacker, "anna", LIMIT)

    # then the last failure is already answered with the lockout
    assert codes == [200] * (LIMIT - 1) + [429]

    # and anna's right password from another address does not log her in
    anna = from_address("10.0.0.2")
    response = log_in(anna, "anna")
    assert response.status_code == 429
    assert not logged_in(anna)

    # while bob logs in from that other address as usual
    bob = from_address("10.0.0.2")
    assert log_in(bob, "bob").status_code == 302
    assert logged_in(bob)


def test_an_address_locks_after_the_limit_whatever_the_usernames(db: None) -> None:
    # given failures for as many different usernames from one address
    UserFactory(username="bob")
    guesser = from_address("10.0.0.3")
    for i in range(LIMIT):
        fail_login(guesser, f"guess{i}", 1)

    # when bob logs in from that address, and from another one
    from_there = from_address("10.0.0.3")
    response = log_in(from_there, "bob")
    elsewhere = from_address("10.0.0.4")
    log_in(elsewhere, "bob")

    # then only the locked address is refused
    assert response.status_code == 429
    assert not logged_in(from_there)
    assert logged_in(elsewhere)


def test_the_login_page_says_the_account_is_locked_and_until_when(db: None) -> None:
    # given
    UserFactory(username="anna")
    client = from_address("10.0.0.1")
    fail_login(client, "anna", LIMIT)

    # when
    response = log_in(client, "anna")

    # then the login page in the app's layout, with the reason and a Retry-After
    html = response.content.decode()
    assert response.status_code == 429
    assert "<title>Log in · Aegis Studio</title>" in html
    assert 'id="login-locked"' in html
    assert "Too many failed logins for this account: logging in is locked until" in html
    assert "(in 15 minutes)" in html
    assert 'value="anna"' in html
    assert 900 - 5 <= int(response["Retry-After"]) <= 900
    # and nothing is said of a wrong password
    assert "Please enter a correct username" not in html


def test_the_page_of_a_locked_address_names_the_address(db: None) -> None:
    guesser = from_address("10.0.0.3")
    for i in range(LIMIT):
        fail_login(guesser, f"guess{i}", 1)

    response = guesser.post(LOGIN, {"username": "someone", "password": "x"})

    assert response.status_code == 429
    assert "Too many failed logins from your address" in response.content.decode()


def test_a_try_during_the_lock_does_not_push_it_back(db: None) -> None:
    # given a locked account
    UserFactory(username="anna")
    fail_login(from_address("10.0.0.1"), "anna", LIMIT)
    [before, _] = lockouts.current_locks()

    # when more wrong (and right) passwords come while it is locked
    fail_login(from_address("10.0.0.1"), "anna", 3)
    log_in(from_address("10.0.0.2"), "anna")

    # then the lock ends when it would have, and no failure was counted
    [account, address] = lockouts.current_locks()
    assert (account.kind, account.key, account.until) == (
        "account",
        "anna",
        before.until,
    )
    assert account.failures == LIMIT
    assert address.kind == "address"


def test_the_admin_sites_login_is_locked_too(db: None) -> None:
    AdminFactory(username="root")
    client = from_address("10.0.0.9")
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})

    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})

    assert response.status_code == 429
    assert not logged_in(client)


# --- who is locked, and until when (pure) --------------------------------------------


def attempt(username: str, address: str, failures: int, minutes: int) -> Attempt:
    return Attempt(username, address, failures, T0 + timedelta(minutes=minutes))


def test_an_accounts_failures_add_up_over_its_addresses() -> None:
    attempts = [attempt("anna", "10.0.0.1", 2, 0), attempt("anna", "10.0.0.2", 2, 5)]

    locks = lockouts.locks_from(attempts, limit=4, cool_off=COOL_OFF)

    assert locks == [
        Lock("account", "anna", ("10.0.0.1", "10.0.0.2"), 4, T0 + timedelta(minutes=15))
    ]


def test_a_lock_lasts_until_the_failures_still_counting_fall_below_the_limit() -> None:
    # 3 failures at 0 min, 3 more at 10 min: 6 of a limit of 4; at 15 min the first
    # row stops counting and 3 are left
    attempts = [attempt("anna", "", 3, 0), attempt("anna", "", 3, 10)]
    [lock] = lockouts.locks_from(attempts, limit=4, cool_off=COOL_OFF)
    assert lock.until == T0 + timedelta(minutes=15)

    # with a limit of 3 the last 3 still lock until 25 min
    [lock] = lockouts.locks_from(attempts, limit=3, cool_off=COOL_OFF)
    assert lock.until == T0 + timedelta(minutes=25)


def test_failures_under_the_limit_lock_nothing() -> None:
    attempts = [attempt("anna", "10.0.0.1", 1, 0), attempt("bob", "10.0.0.1", 2, 0)]

    assert lockouts.locks_from(attempts, limit=4, cool_off=COOL_OFF) == []
    assert lockouts.locks_from(attempts, limit=3, cool_off=COOL_OFF) == [
        Lock("address", "10.0.0.1", ("anna", "bob"), 3, T0 + timedelta(minutes=15))
    ]


def test_failures_older_than_the_cool_off_are_not_a_lock(db: None) -> None:
    fail_login(from_address("10.0.0.1"), "anna", LIMIT)
    AccessAttempt.objects.update(attempt_time=T0)

    assert lockouts.current_locks(now=T0 + COOL_OFF + timedelta(seconds=1)) == []
    assert len(lockouts.current_locks(now=T0 + COOL_OFF)) == 2


# --- unlocking -----------------------------------------------------------------------


def test_the_axes_reset_username_command_unlocks_an_account(db: None) -> None:
    # given
    UserFactory(username="anna")
    fail_login(from_address("10.0.0.1"), "anna", LIMIT)

    # when
    call_command("axes_reset_username", "anna", stdout=None)

    # then
    client = from_address("10.0.0.2")
    assert log_in(client, "anna").status_code == 302
    assert logged_in(client)
    assert not AccessAttempt.objects.filter(username="anna").exists()


def locked_anna() -> User:
    anna = UserFactory(username="anna")
    fail_login(from_address("10.0.0.1"), "anna", LIMIT)
    return anna


def test_leads_see_the_locked_accounts_on_the_batch_list(db: None) -> None:
    # given
    locked_anna()
    lead = LeadFactory(username="lena")
    client = Client()
    client.force_login(lead)

    # when
    html = re.sub(r">\s+<", "><", client.get("/batches/").content.decode())

    # then the account and the address, with failures and the end of the lock
    [account, _] = lockouts.current_locks()
    local = timezone.localtime(account.until)
    until = local.strftime("%Y-%m-%d %H:%M")
    assert 'id="locked-accounts"' in html
    for kind in ["Account", "Address"]:
        assert (
            f'<td>{kind}</td><td>anna</td><td class="code">10.0.0.1</td>'
            f'<td class="num">{LIMIT}</td><td class="nowrap" title="{local:%Y-%m-%d %H:%M:%S}">{until}</td>'
        ) in html
    # but a lead has no Unlock button
    assert "Unlock</button>" not in html


def test_a_lead_cannot_unlock(db: None) -> None:
    locked_anna()
    client = Client()
    client.force_login(LeadFactory(username="lena"))

    response = client.post("/accounts/unlock/", {"kind": "account", "key": "anna"})

    assert response.status_code == 403
    assert AccessAttempt.objects.filter(username="anna").exists()
    assert len(lockouts.current_locks()) == 2


def test_an_admin_unlocks_an_account_with_the_button(db: None) -> None:
    # given
    locked_anna()
    client = Client()
    client.force_login(AdminFactory(username="root"))
    html = client.get("/batches/").content.decode()
    assert html.count("Unlock</button>") == 2

    # when
    response = client.post(
        "/accounts/unlock/", {"kind": "account", "key": "anna", "next": "/batches/"}
    )

    # then back on the page, which says so, and anna logs in
    assert response.status_code == 302
    assert response["Location"] == "/batches/"
    after = client.get("/batches/").content.decode()
    assert "Unlocked the account anna." in after
    assert 'id="locked-accounts"' not in after
    anna = from_address("10.0.0.1")
    assert log_in(anna, "anna").status_code == 302


def test_an_admin_unlocks_an_address(db: None) -> None:
    guesser = from_address("10.0.0.3")
    for i in range(LIMIT):
        fail_login(guesser, f"guess{i}", 1)
    client = Client()
    client.force_login(AdminFactory(username="root"))

    client.post("/accounts/unlock/", {"kind": "address", "key": "10.0.0.3"})

    assert lockouts.current_locks() == []


def test_unlocking_refuses_a_get_and_an_unknown_kind(db: None) -> None:
    locked_anna()
    client = Client()
    client.force_login(AdminFactory(username="root"))

    assert client.get("/accounts/unlock/").status_code == 405
    client.post("/accounts/unlock/", {"kind": "everyone", "key": "anna"})

    assert len(lockouts.current_locks()) == 2


def test_no_panel_when_nobody_is_locked(db: None) -> None:
    client = Client()
    client.force_login(LeadFactory(username="lena"))

    assert "Locked accounts" not in client.get("/batches/").content.decode()


def test_the_panel_costs_one_query(db: None, django_assert_num_queries: Any) -> None:
    locked_anna()
    request = RequestFactory().get("/batches/")
    request.user = LeadFactory(username="lena")
    template = Template("{% load locked_accounts %}{% locked_accounts_panel %}")

    with django_assert_num_queries(1):
        html = template.render(Context({"request": request}))

    assert html.count("<tr id=") == 2


# --- the client's address ------------------------------------------------------------


def test_the_address_is_remote_addr_without_proxies(settings: Any) -> None:
    settings.AEGIS_PROXY_COUNT = 0
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6"
    )

    assert lockouts.client_address(request) == "10.0.0.1"


def test_behind_a_proxy_the_address_is_the_one_it_appended(settings: Any) -> None:
    # a client may write anything to the left; the proxy appends what it saw
    settings.AEGIS_PROXY_COUNT = 1
    request = RequestFactory().get(
        "/", REMOTE_ADDR="172.18.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
    )

    assert lockouts.client_address(request) == "203.0.113.7"


def test_behind_a_proxy_failures_count_for_the_forwarded_address(
    db: None, settings: Any
) -> None:
    # given two people behind one proxy
    settings.AEGIS_PROXY_COUNT = 1
    UserFactory(username="bob")
    guesser = Client(REMOTE_ADDR="172.18.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    for i in range(LIMIT):
        fail_login(guesser, f"guess{i}", 1)

    # when bob logs in through the same proxy from his own address
    bob = Client(REMOTE_ADDR="172.18.0.2", HTTP_X_FORWARDED_FOR="198.51.100.4")
    log_in(bob, "bob")

    # then only the guesser's address is locked
    assert logged_in(bob)
    assert [(lock.kind, lock.key) for lock in lockouts.current_locks()] == [
        ("address", "203.0.113.7")
    ]
