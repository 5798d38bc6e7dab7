"""The lockout, throttle and cache settings read from the environment, each case in
a fresh interpreter (settings are evaluated once per process)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import json
import config.settings as s
print(json.dumps({
    "backends": s.AUTHENTICATION_BACKENDS,
    "last_middleware": s.MIDDLEWARE[-1],
    "limit": s.AXES_FAILURE_LIMIT,
    "cool_off": s.AXES_COOLOFF_TIME.total_seconds(),
    "parameters": s.AXES_LOCKOUT_PARAMETERS,
    "proxies": s.AEGIS_PROXY_COUNT,
    "rates": s.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
    "throttles": s.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"],
    "num_proxies": s.REST_FRAMEWORK["NUM_PROXIES"],
    "cache": s.CACHES["default"],
}))
"""


def load(tmp_path: Path, **env: str) -> dict[str, Any]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "AEGIS_", "PYTEST_"))
        and key not in {"DATABASE_URL", "CACHE_URL"}
    }
    clean["AEGIS_DATA_DIR"] = str(tmp_path)
    clean.update(env)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_logins_lock_per_user_and_per_address_by_default(tmp_path: Path) -> None:
    s = load(tmp_path)

    assert s["backends"][0] == "axes.backends.AxesStandaloneBackend"
    assert s["last_middleware"] == "axes.middleware.AxesMiddleware"
    assert (s["limit"], s["cool_off"]) == (10, 15 * 60)
    assert s["parameters"] == ["username", "ip_address"]
    assert (s["proxies"], s["num_proxies"]) == (0, 0)


def test_the_limit_the_cool_off_and_the_proxies_are_settings(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        AEGIS_LOGIN_FAILURE_LIMIT="5",
        AEGIS_LOGIN_COOLOFF_MINUTES="2.5",
        AEGIS_PROXY_COUNT="1",
    )

    assert (s["limit"], s["cool_off"]) == (5, 150)
    assert (s["proxies"], s["num_proxies"]) == (1, 1)


def test_the_api_is_throttled_generously_by_default(tmp_path: Path) -> None:
    s = load(tmp_path)

    assert s["throttles"] == [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ]
    assert s["rates"] == {"anon": "60/min", "user": "600/min"}


def test_the_rates_are_settings_and_off_turns_one_off(tmp_path: Path) -> None:
    s = load(tmp_path, AEGIS_API_ANON_RATE="off", AEGIS_API_USER_RATE="50/s")

    assert s["rates"] == {"anon": None, "user": "50/s"}


def test_without_redis_the_cache_is_the_processs_memory(tmp_path: Path) -> None:
    s = load(tmp_path)

    assert s["cache"] == {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def test_with_a_redis_broker_the_cache_is_on_that_redis(tmp_path: Path) -> None:
    s = load(tmp_path, CELERY_BROKER_URL="redis://cache.example:6379/3")

    assert s["cache"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache.example:6379/3",
        "KEY_PREFIX": "aegis",
    }


def test_cache_url_names_the_cache(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        CELERY_BROKER_URL="redis://broker.example:6379/0",
        CACHE_URL="redis://cache.example:6379/1",
    )

    assert s["cache"]["LOCATION"] == "redis://cache.example:6379/1"
