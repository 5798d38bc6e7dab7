"""The API's throttles: a client over its rate gets 429 with Retry-After (issue 13).

The test settings turn the rates off (the suite's ids repeat on SQLite); these tests
set small ones. DRF reads the rates once, into SimpleRateThrottle.THROTTLE_RATES, so
that is what they patch rather than the setting.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.models import User
from tests.factories import LeadFactory


@pytest.fixture(autouse=True)
def rates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"anon": "1/min", "user": "2/min"}
    )
    cache.clear()
    yield
    cache.clear()


def token_client(user: User) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_a_signed_in_client_over_its_rate_gets_429_with_retry_after(db: None) -> None:
    # given
    client = token_client(LeadFactory(username="lena"))

    # when
    codes = [client.get("/api/v1/batches").status_code for _ in range(3)]
    response = client.get("/api/v1/batches")

    # then
    assert codes == [200, 200, 429]
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    body = response.json()
    assert body["code"] == "throttled"
    assert body["detail"].startswith("Request was throttled.")
    assert set(body) == {"detail", "code"}


def test_each_user_has_a_rate_of_their_own(db: None) -> None:
    # given one user over the rate
    busy = token_client(LeadFactory(username="lena"))
    for _ in range(3):
        busy.get("/api/v1/batches")

    # when another user asks
    other = token_client(LeadFactory(username="olga"))

    # then
    assert other.get("/api/v1/batches").status_code == 200
    assert busy.get("/api/v1/batches").status_code == 429


class Open(APIView):
    """A stand-in for an endpoint anyone may call: every endpoint of the API asks
    for a login, and a client without one is refused (401) before any throttle."""

    permission_classes = [AllowAny]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


def test_an_anonymous_client_has_a_rate_per_address() -> None:
    # given the API's default throttles on an open endpoint
    view = Open.as_view()
    factory = APIRequestFactory()

    # when one address asks twice, and another once
    first = view(factory.get("/open", REMOTE_ADDR="10.0.0.1"))
    second = view(factory.get("/open", REMOTE_ADDR="10.0.0.1"))
    elsewhere = view(factory.get("/open", REMOTE_ADDR="10.0.0.2"))

    # then
    assert (first.status_code, second.status_code) == (200, 429)
    assert second["Retry-After"]
    assert elsewhere.status_code == 200


def test_an_anonymous_client_of_the_api_is_refused_before_any_throttle(
    db: None,
) -> None:
    client = APIClient()

    codes = [client.get("/api/v1/batches").status_code for _ in range(3)]

    assert codes == [401, 401, 401]
