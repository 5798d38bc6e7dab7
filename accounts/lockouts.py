"""Logins locked after repeated failures (django-axes), as people see and lift them.

django-axes counts the failures (one AccessAttempt row per username, address and
browser, with its count and last failure) and refuses a login once the failures for
its username, or from its address, reach AXES_FAILURE_LIMIT within the cool-off. This
module says who is locked and until when, lifts a lock, and answers a locked login
with the login page.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

Kind = Literal["account", "address"]


@dataclass(frozen=True)
class Attempt:
    """One AccessAttempt row: failures for a username from an address."""

    username: str
    address: str
    failures: int
    last_failure: datetime


@dataclass(frozen=True)
class Lock:
    """A locked account (key: the username) or address (key: the address)."""

    kind: Kind
    key: str
    # The addresses an account was tried from, or the usernames an address tried.
    seen_with: tuple[str, ...]
    failures: int
    until: datetime


def _lock(
    kind: Kind, key: str, rows: list[Attempt], limit: int, cool_off: timedelta
) -> Lock | None:
    """The lock on one account or address, if its failures reach the limit.

    Each row stops counting a cool-off after its last failure; the lock lifts when
    the rows still counting fall below the limit.
    """
    total = sum(row.failures for row in rows)
    if total < limit:
        return None
    remaining = total
    until = rows[-1].last_failure + cool_off
    for row in sorted(rows, key=lambda r: r.last_failure):
        remaining -= row.failures
        if remaining < limit:
            until = row.last_failure + cool_off
            break
    others = {row.address if kind == "account" else row.username for row in rows}
    return Lock(kind, key, tuple(sorted(others - {""})), total, until)


def locks_from(
    attempts: Iterable[Attempt], *, limit: int, cool_off: timedelta
) -> list[Lock]:
    """The accounts and addresses locked by these (unexpired) attempts: accounts
    first, then addresses, each by name."""
    by_account: dict[str, list[Attempt]] = defaultdict(list)
    by_address: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        if attempt.username:
            by_account[attempt.username].append(attempt)
        if attempt.address:
            by_address[attempt.address].append(attempt)
    locks = [
        _lock("account", name, rows, limit, cool_off)
        for name, rows in sorted(by_account.items())
    ] + [
        _lock("address", address, rows, limit, cool_off)
        for address, rows in sorted(by_address.items())
    ]
    return [lock for lock in locks if lock is not None]


def current_locks(now: datetime | None = None) -> list[Lock]:
    """Every account and address locked now (one query)."""
    cool_off = get_cool_off() or timedelta(0)
    rows = AccessAttempt.objects.filter(
        attempt_time__gte=(now or timezone.now()) - cool_off
    ).values_list("username", "ip_address", "failures_since_start", "attempt_time")
    attempts = [Attempt(u or "", a or "", n, t) for u, a, n, t in rows]
    return locks_from(attempts, limit=settings.AXES_FAILURE_LIMIT, cool_off=cool_off)


def unlock(*, kind: Kind, key: str) -> int:
    """Forget the failures of an account (every address) or of an address (every
    username); returns how many attempt rows went. As `manage.py
    axes_reset_username NAME` and `axes_reset_ip ADDRESS` do."""
    if kind == "account":
        return reset(username=key)
    return reset(ip=key)


def client_address(request: HttpRequest) -> str | None:
    """The client's address as axes counts it: REMOTE_ADDR, or behind
    AEGIS_PROXY_COUNT proxies the address the first of them received the request
    from (in X-Forwarded-For, where a client can write anything to the left). DRF's
    throttles find it the same way (NUM_PROXIES)."""
    proxies = settings.AEGIS_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        addresses = [part.strip() for part in forwarded.split(",")]
        return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR")


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The login page again, saying the login is locked and until when (429, with
    Retry-After); axes calls this (AXES_LOCKOUT_CALLABLE) for a refused login."""
    username = get_client_username(request, credentials) or ""
    address = client_address(request) or ""
    locks = [
        lock
        for lock in current_locks()
        if (lock.kind, lock.key) in {("account", username), ("address", address)}
    ]
    until = max(
        (lock.until for lock in locks),
        default=timezone.now() + (get_cool_off() or timedelta(0)),
    )
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next", request.GET.get("next", "")),
        "locked": {
            "account": any(lock.kind == "account" for lock in locks),
            "until": until,
            "minutes": math.ceil(seconds / 60),
        },
    }
    response = render(request, "accounts/login.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
