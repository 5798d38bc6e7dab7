"""The jury runs' tests judge on the scripted chat-completions server (the edge that
leaves the machine), with no backend cached from an earlier test."""

from collections.abc import Iterator

import pytest

from jury.backends import clear_backends
from tests.jury.scripted_server import scripted_server


@pytest.fixture
def endpoint() -> Iterator[str]:
    clear_backends()
    with scripted_server() as (url, _):
        yield url
    clear_backends()
