"""config.settings read from the environment, each case in a fresh interpreter.

Settings are evaluated once per process, so every case imports them in a subprocess
with exactly the environment it describes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Prints what the settings module decided, or the error it refused to start with.
SCRIPT = """
import json
try:
    import config.settings as s
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    db = s.DATABASES["default"]
    print(json.dumps({
        "DEBUG": s.DEBUG,
        "SECRET_KEY": s.SECRET_KEY,
        "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
        "ENGINE": db["ENGINE"],
        "NAME": str(db["NAME"]),
        "HOST": db.get("HOST", ""),
        "OPTIONS": db.get("OPTIONS", {}),
        "CONN_MAX_AGE": db.get("CONN_MAX_AGE"),
        "DATA_DIR": str(s.DATA_DIR),
        "MEDIA_ROOT": str(s.MEDIA_ROOT),
        "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
        "CELERY_BROKER_TRANSPORT_OPTIONS": s.CELERY_BROKER_TRANSPORT_OPTIONS,
        "SESSION_COOKIE_SECURE": getattr(s, "SESSION_COOKIE_SECURE", None),
        "STATICFILES": s.STORAGES["staticfiles"]["BACKEND"],
    }))
"""

PREFIXES = ("DJANGO_", "CELERY_", "AEGIS_", "PYTEST_")
POSTGRES = "postgres://aegis:pw@db.example:5432/aegis"


def load_settings(tmp_path: Path, **env: str) -> dict[str, Any]:
    """Import config.settings in a subprocess with a clean environment plus `env`."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(PREFIXES) and key != "DATABASE_URL"
    }
    clean["AEGIS_DATA_DIR"] = str(tmp_path)
    clean.update(env)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_with_nothing_set_it_runs_in_debug_on_sqlite_and_an_embedded_broker(
    tmp_path: Path,
) -> None:
    # when
    s = load_settings(tmp_path)

    # then
    assert "error" not in s
    assert s["DEBUG"] is True
    assert s["SECRET_KEY"].startswith("django-insecure-")
    assert s["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]", "testserver"]
    assert s["ENGINE"] == "django.db.backends.sqlite3"
    assert s["NAME"] == str(tmp_path / "aegis.sqlite3")
    assert s["CONN_MAX_AGE"] == 0
    assert "PRAGMA journal_mode=WAL" in s["OPTIONS"]["init_command"]
    assert s["OPTIONS"]["timeout"] == 30
    assert s["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert s["CELERY_BROKER_URL"].startswith("sqla+sqlite")
    assert s["CELERY_BROKER_URL"] == f"sqla+sqlite:///{tmp_path}/celery-broker.sqlite3"
    assert "visibility_timeout" not in s["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert s["DATA_DIR"] == str(tmp_path)
    assert s["MEDIA_ROOT"] == str(tmp_path / "media")
    assert s["SESSION_COOKIE_SECURE"] is None


def test_data_dir_is_created_and_nothing_is_written_elsewhere(tmp_path: Path) -> None:
    # given
    data_dir = tmp_path / "nested" / "data"

    # when
    s = load_settings(tmp_path, AEGIS_DATA_DIR=str(data_dir))

    # then
    assert data_dir.is_dir()
    assert s["NAME"] == str(data_dir / "aegis.sqlite3")
    assert not (data_dir / "aegis.sqlite3").exists()  # importing settings opens no DB


def test_a_server_database_without_a_secret_key_refuses_to_start(
    tmp_path: Path,
) -> None:
    # when
    s = load_settings(tmp_path, DATABASE_URL=POSTGRES)

    # then
    assert s == {
        "error": "ImproperlyConfigured",
        "message": "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off",
    }


def test_debug_off_without_a_secret_key_refuses_to_start_on_sqlite_too(
    tmp_path: Path,
) -> None:
    # when
    s = load_settings(tmp_path, DJANGO_DEBUG="0")

    # then
    assert s["error"] == "ImproperlyConfigured"
    assert "DJANGO_SECRET_KEY" in s["message"]


def test_an_empty_secret_key_counts_as_missing(tmp_path: Path) -> None:
    # when
    s = load_settings(tmp_path, DATABASE_URL=POSTGRES, DJANGO_SECRET_KEY="")

    # then
    assert s["error"] == "ImproperlyConfigured"


def test_a_deployment_is_production_on_postgresql(tmp_path: Path) -> None:
    # when
    s = load_settings(
        tmp_path,
        DATABASE_URL=POSTGRES,
        DJANGO_SECRET_KEY="s3cret-for-tests",
        DJANGO_ALLOWED_HOSTS="a.example, b.example",
    )

    # then
    assert "error" not in s
    assert s["DEBUG"] is False
    assert s["SECRET_KEY"] == "s3cret-for-tests"
    assert s["ENGINE"] == "django.db.backends.postgresql"
    assert (s["NAME"], s["HOST"]) == ("aegis", "db.example")
    assert s["CONN_MAX_AGE"] == 60
    assert "init_command" not in s["OPTIONS"]
    assert s["ALLOWED_HOSTS"] == ["a.example", "b.example"]
    assert s["SESSION_COOKIE_SECURE"] is True
    assert s["STATICFILES"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )


def test_a_deployment_without_allowed_hosts_allows_none(tmp_path: Path) -> None:
    # when
    s = load_settings(tmp_path, DATABASE_URL=POSTGRES, DJANGO_SECRET_KEY="k")

    # then
    assert s["DEBUG"] is False
    assert s["ALLOWED_HOSTS"] == []


def test_django_debug_turns_debug_on_with_a_server_database(tmp_path: Path) -> None:
    # when
    s = load_settings(tmp_path, DATABASE_URL=POSTGRES, DJANGO_DEBUG="1")

    # then
    assert s["DEBUG"] is True
    assert s["ENGINE"] == "django.db.backends.postgresql"
    assert s["SECRET_KEY"].startswith("django-insecure-")


def test_a_redis_broker_is_used_with_a_visibility_timeout(tmp_path: Path) -> None:
    # when
    s = load_settings(tmp_path, CELERY_BROKER_URL="redis://cache.example:6379/2")

    # then
    assert s["CELERY_BROKER_URL"] == "redis://cache.example:6379/2"
    assert s["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"visibility_timeout": 6 * 3600}


def test_the_visibility_timeout_can_be_configured(tmp_path: Path) -> None:
    # when
    s = load_settings(
        tmp_path,
        CELERY_BROKER_URL="rediss://cache.example:6380/0",
        CELERY_VISIBILITY_TIMEOUT="90000",
    )

    # then
    assert s["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"visibility_timeout": 90000}
