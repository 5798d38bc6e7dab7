"""Test settings: the real services (PostgreSQL, Redis) the Makefile points at."""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")

from config.settings import *  # noqa: F403
from config.settings import DATA_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = DATA_DIR / "test-media"
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}

# pytest-xdist runs one process per core, each with its own test database; each gets
# its own Redis database too, so one process's worker never takes another's tasks.
# AEGIS_TEST_SLOT (0 to 3) keeps two test runs on one machine apart (a second
# checkout, a developer's run beside CI): slot s takes Redis databases 15-2s and
# 14-2s and media folders of its own. Give each its own DATABASE_URL name as well.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_slot = int(os.environ.get("AEGIS_TEST_SLOT", "0") or 0) % 4
_broker = os.environ.get("CELERY_BROKER_URL", "")
if _broker.startswith("redis://"):
    _n = int(_worker.removeprefix("gw") or 0)
    _index = 15 - (_n % 8 if not _slot else 2 * _slot + _n % 2)
    CELERY_BROKER_URL = _broker.rsplit("/", 1)[0] + f"/{_index}"
    # Celery reads this environment variable before any setting: point it there too,
    # or every process would share (and steal from) one queue.
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
MEDIA_ROOT = DATA_DIR / (
    f"test-media-{_worker}" if not _slot else f"test-media-{_slot}-{_worker}"
)

# The suite logs in thousands of times, and Client.login gives django-axes no request
# to count: the lockout is off here and on in the tests of it (tests/accounts).
AXES_ENABLED = False
# Throttle counts in each process's memory, not a Redis that outlives the tests.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Not throttled either: on SQLite a user's id comes back in the next test, and counts
# would pile up across tests. The tests of throttling set rates of their own.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"anon": None, "user": None},
}
