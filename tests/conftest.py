"""Fixtures shared by the whole suite: users, a real Celery worker, data paths."""

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
    """A real Celery worker (in a thread of this process) on the test broker."""
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
