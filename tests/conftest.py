"""Fixtures shared by the whole suite: users, a real Celery worker, data paths."""

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD, AdminFactory, LeadFactory, UserFactory

SHARED_DATA = Path(
    os.environ.get("AEGIS_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


DB_FIXTURES = {"db", "transactional_db", "live_server"}


@pytest.fixture(autouse=True)
def _migration_data(request: pytest.FixtureRequest) -> None:
    """Put back the data the migrations create (the Aegis 2.0 taxonomy) if missing.

    A transactional test (real workers, the browser) ends with a flush of every
    table; tests after it would otherwise find no taxonomy.
    """
    names = set(request.fixturenames)
    if not (names & DB_FIXTURES or request.node.get_closest_marker("django_db")):
        return
    transactional = bool(names & {"transactional_db", "live_server"})
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.apps import apps

    from taxonomy.models import Taxonomy

    if not Taxonomy.objects.exists():
        migration = importlib.import_module("taxonomy.migrations.0002_aegis2_taxonomy")
        migration.create(apps, None)


@pytest.fixture
def data_dir() -> Path:
    assert SHARED_DATA.is_dir(), f"the shared datasets are missing at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture
def annotator(db: None) -> User:
    return UserFactory(username="anna")


@pytest.fixture
def lead(db: None) -> User:
    return LeadFactory(username="lena")


@pytest.fixture
def admin_user(db: None) -> User:
    return AdminFactory(username="root")


def login(client: Client, user: User) -> Client:
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def lead_client(client: Client, lead: User) -> Client:
    return login(client, lead)


@pytest.fixture
def annotator_client(client: Client, annotator: User) -> Client:
    return login(client, annotator)


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[None]:
    """A real Celery worker (in a thread of this process) on the test broker.

    The worker has its own database connection, so the test runs outside a wrapping
    transaction (and the tables are flushed after it: see `_migration_data`).
    """
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.control.purge()
    with start_worker(
        app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        queues=["default"],
        loglevel="WARNING",
        shutdown_timeout=30,
    ):
        yield
