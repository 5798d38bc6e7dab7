"""The API does what its schema says: schemathesis, for an annotator, a lead, an admin."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode

from accounts.models import User
from tests.factories import (
    AdminFactory,
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def wsgi_app() -> Iterator[WSGIHandler]:
    """Django's own WSGI stack, in this process and this test's transaction (as the
    test client does, requests do not close the connection that holds it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _person(role: str) -> User:
    now = timezone.now()
    if role == "lead":
        return LeadFactory(username="lena", content_warning_acknowledged_at=now)
    if role == "admin":
        return AdminFactory(username="root", content_warning_acknowledged_at=now)
    return UserFactory(username="anna", content_warning_acknowledged_at=now)


# An import's file and an export's batches are read by the rules of the app (a
# format it knows, batches that exist, ratios that add up to 1), which a schema
# cannot say: there a valid-looking request may be refused with a 400 naming the
# field. Everywhere else a request the schema allows must not be a 400.
RULES_OF_THE_APP = ["2xx", "400", "401", "403", "404", "409", "429"]
CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                "include-path": path,
                "include-method": "POST",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": RULES_OF_THE_APP}
                },
            }
            for path in ("/api/v1/imports", "/api/v1/exports")
        ]
    }
)


def _schema(user: User, wsgi_app: WSGIHandler) -> tuple[Any, dict[str, str]]:
    """The schema as the person fetches it (it is served to signed-in clients only)."""
    token = Token.objects.create(user=user)
    headers = {"Authorization": f"Token {token.key}", "Accept": "application/json"}
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/", wsgi_app, headers=headers, config=CONFIG
    )
    # No NUL characters in text: DRF refuses them in every field (PostgreSQL cannot
    # store them), which a JSON schema has no short way to say.
    schema.config.generation.allow_x00 = False
    return schema, {"Authorization": headers["Authorization"]}


def _failures(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> str:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers)

    try:
        run()
    except Unsatisfiable:
        # Nothing in the operation can be sent invalid (a path's name is any text).
        assert mode == GenerationMode.NEGATIVE, operation.label
    except (Exception, BaseExceptionGroup) as exc:  # all of them, reported below
        return f"{operation.label} ({mode}): {exc}"
    return ""


EXAMPLES = 10


def _modes(operation: Any) -> list[GenerationMode]:
    """Valid requests everywhere; invalid ones where there is input to break."""
    has_input = operation.body or any(True for _ in operation.iter_parameters())
    if has_input:
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


@pytest.mark.parametrize("role", ["annotator", "lead", "admin"])
def test_the_api_matches_its_schema(role: str, wsgi_app: WSGIHandler) -> None:
    # given a batch of dialogues, and one person of the role assigned to it
    batch = BatchFactory(name="work", labels_required=2)
    DialogueFactory.create_batch(3, batch=batch)
    user = _person(role)
    AssignmentFactory(batch=batch, annotator=user)
    schema, headers = _schema(user, wsgi_app)

    # when schemathesis sends what the schema allows, and what it does not
    failures = [
        _failures(operation, mode, headers)
        for operation in (result.ok() for result in schema.get_all_operations())
        for mode in _modes(operation)
    ]

    # then every answer is one the schema declares, in its shape
    failures = [f for f in failures if f]
    assert not failures, "\n\n".join(failures)
