"""config.settings read from the environment, each case in a fresh interpreter.

Settings are evaluated once per process, so every case imports them in a subprocess
with exactly the environment it describes.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
        "CSRF_COOKIE_SECURE": getattr(s, "CSRF_COOKIE_SECURE", None),
        "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
        "SECURE_HSTS_PRELOAD": s.SECURE_HSTS_PRELOAD,
        "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
        "SECURE_PROXY_SSL_HEADER": getattr(s, "SECURE_PROXY_SSL_HEADER", None),
    }))
"""

PREFIXES = ("DJANGO_", "CELERY_", "AEGIS_", "PYTEST_")
POSTGRES = "postgres://aegis:pw@db.example:5432/aegis"


def clean_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """This process's environment without the app's variables, plus `env`."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(PREFIXES) and key != "DATABASE_URL"
    }
    clean["AEGIS_DATA_DIR"] = str(tmp_path)
    clean.update(env)
    return clean


def load_settings(tmp_path: Path, **env: str) -> dict[str, Any]:
    """Import config.settings in a subprocess with a clean environment plus `env`."""
    clean = clean_env(tmp_path, **env)
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


# --- production: HTTPS, headers, check --deploy, static files -----------------------

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    # 50 characters of several kinds: check --deploy's W009 asks for that much.
    "DJANGO_SECRET_KEY": "k3y-for-tests-only_0123456789abcdefghijklmnopqrstuvwxyz",
    "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
}


def test_https_is_off_until_asked_for(tmp_path: Path) -> None:
    # when
    s = load_settings(tmp_path, **PRODUCTION)

    # then the cookies are secure, but nothing forces HTTPS on a first deployment
    assert (s["SESSION_COOKIE_SECURE"], s["CSRF_COOKIE_SECURE"]) == (True, True)
    assert s["SECURE_HSTS_SECONDS"] == 0
    assert s["SECURE_SSL_REDIRECT"] is False
    assert s["SECURE_PROXY_SSL_HEADER"] is None


def test_hsts_ssl_redirect_and_the_proxy_header_are_settings(tmp_path: Path) -> None:
    # when
    s = load_settings(
        tmp_path,
        **PRODUCTION,
        DJANGO_HSTS_SECONDS="31536000",
        DJANGO_SSL_REDIRECT="1",
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )

    # then
    assert s["SECURE_HSTS_SECONDS"] == 31536000
    assert (s["SECURE_HSTS_INCLUDE_SUBDOMAINS"], s["SECURE_HSTS_PRELOAD"]) == (
        True,
        True,
    )
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_subdomains_and_preload_can_be_left_out_of_hsts(tmp_path: Path) -> None:
    # when
    s = load_settings(
        tmp_path,
        **PRODUCTION,
        DJANGO_HSTS_SECONDS="3600",
        DJANGO_HSTS_INCLUDE_SUBDOMAINS="0",
        DJANGO_HSTS_PRELOAD="0",
    )

    # then
    assert (s["SECURE_HSTS_INCLUDE_SUBDOMAINS"], s["SECURE_HSTS_PRELOAD"]) == (
        False,
        False,
    )


def check_deploy(tmp_path: Path, **env: str) -> set[str]:
    """The security check ids `manage.py check --deploy` reports under `env`."""
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=REPO,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return set(re.findall(r"security\.[WE]\d+", done.stdout + done.stderr))


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    # when
    found = check_deploy(
        tmp_path, **PRODUCTION, DJANGO_HSTS_SECONDS="31536000", DJANGO_SSL_REDIRECT="1"
    )

    # then
    assert found == set()


def test_check_deploy_names_only_https_when_it_is_not_asked_for(
    tmp_path: Path,
) -> None:
    # when: production settings without HSTS and the redirect (the README says why)
    found = check_deploy(tmp_path, **PRODUCTION)

    # then
    assert found == {"security.W004", "security.W008"}


def test_pages_carry_the_strict_content_security_policy(client, db: None) -> None:
    # when
    login = client.get("/accounts/login/")
    admin = client.get("/admin/login/")
    api = client.get("/api/v1/batches", HTTP_ACCEPT="text/html")

    # then
    directives = {
        d.strip().split(" ", 1)[0]: d.strip().split(" ", 1)[1]
        for d in login.headers["Content-Security-Policy"].split(";")
    }
    assert directives == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
    }
    assert (
        admin.headers["Content-Security-Policy"]
        == (login.headers["Content-Security-Policy"])
    )
    # DRF's browsable API ships inline style; its scripts stay 'self'
    assert "style-src 'self' 'unsafe-inline'" in api.headers["Content-Security-Policy"]
    assert "script-src 'self';" in api.headers["Content-Security-Policy"] + ";"


def test_the_api_schema_needs_a_login(client, db: None) -> None:
    from tests.factories import UserFactory

    # when
    anonymous = client.get("/api/schema/")
    client.force_login(UserFactory(username="ann"))
    signed_in = client.get("/api/schema/?format=json")

    # then
    assert anonymous.status_code in (401, 403)
    assert "paths" not in anonymous.content.decode()
    assert signed_in.status_code == 200
    assert "/api/v1/batches" in signed_in.json()["paths"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def test_make_web_with_debug_off_serves_pages_and_their_static_files(
    tmp_path: Path,
) -> None:
    # given `make web`'s script with debug off, on a fresh STATIC_ROOT
    port = free_port()
    env = clean_env(
        tmp_path,
        **PRODUCTION,
        DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite3'}",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        PORT=str(port),
        WEB_CONCURRENCY="1",
    )
    log = (tmp_path / "web.log").open("w")
    web = subprocess.Popen(
        ["scripts/web.sh"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # when the login page answers
        base = f"http://127.0.0.1:{port}"
        status, _, html = 0, "", ""
        for _ in range(120):
            if web.poll() is not None:
                break
            try:
                status, _, html = get(f"{base}/accounts/login/")
                break
            except OSError:
                time.sleep(0.5)

        # then it is the page, with its stylesheet collected and served
        assert status == 200, (tmp_path / "web.log").read_text()[-2000:]
        css = re.search(r'href="(/static/css/app\.[0-9a-f]+\.css)"', html)
        assert css, html[:800]
        css_status, css_type, body = get(base + css.group(1))
        assert (css_status, css_type.split(";")[0]) == (200, "text/css")
        assert "[data-percent]" in body
        assert (tmp_path / "static" / "staticfiles.json").exists()
    finally:
        web.terminate()
        web.wait(timeout=30)
        log.close()
