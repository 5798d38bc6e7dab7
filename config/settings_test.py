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
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_broker = os.environ.get("CELERY_BROKER_URL", "")
if _broker.startswith("redis://"):
    _index = 15 - int(_worker.removeprefix("gw") or 0) % 8
    CELERY_BROKER_URL = _broker.rsplit("/", 1)[0] + f"/{_index}"
    # Celery reads this environment variable before any setting: point it there too,
    # or every process would share (and steal from) one queue.
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
MEDIA_ROOT = DATA_DIR / f"test-media-{_worker}"
