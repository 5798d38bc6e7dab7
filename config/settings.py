"""Settings for Aegis Studio, read from environment variables.

With nothing set the app runs in development mode on SQLite and an embedded Celery
broker (a second SQLite file), so `make run` needs no server. Setting DATABASE_URL
selects a server deployment: debug is then off unless DJANGO_DEBUG says otherwise,
and the secret key must be given.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_rate(name: str, default: str) -> str | None:
    """A DRF rate ("600/min"); "off" or "none": not throttled."""
    value = os.environ.get(name, "").strip() or default
    return None if value.lower() in {"off", "none"} else value


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "")
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or default


DATABASE_URL = os.environ.get("DATABASE_URL", "")
# A server database means a deployment: never fall back to debug there by accident.
DEBUG = env_bool("DJANGO_DEBUG", default=not DATABASE_URL)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off"
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS",
    ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [],
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Where uploads, exports and the development databases live.
DATA_DIR = Path(os.environ.get("AEGIS_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "csp",
    "django_htmx",
    "template_partials",
    "django_celery_results",
    "axes",
    "accounts",
    "taxonomy",
    "annotation",
    "jury",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The Content-Security-Policy header (CONTENT_SECURITY_POLICY below).
    "config.csp.PathScopedCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Innermost: it sees a view's PermissionDenied and Http404 first.
    "config.error_pages.ErrorPagesMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

SQLITE_OPTIONS = {
    # WAL lets the web process read while the worker writes; IMMEDIATE takes the
    # write lock at BEGIN so two writers wait (busy timeout) instead of deadlocking.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}

# Persistent connections suit gunicorn's long-lived workers; the development server
# starts a thread per request, whose connections would pile up, so debug closes them.
CONN_MAX_AGE = int(os.environ.get("DJANGO_CONN_MAX_AGE", 0 if DEBUG else 60))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=CONN_MAX_AGE > 0
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "aegis.sqlite3"),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Logins lock after repeated failures (django-axes): per username, whatever the
# address, and per address, whatever the username. The lock lifts by itself after the
# cool-off (counted from the last failure) or by an admin (accounts.lockouts).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AEGIS_LOGIN_FAILURE_LIMIT", 10))
AXES_COOLOFF_TIME = timedelta(
    minutes=float(os.environ.get("AEGIS_LOGIN_COOLOFF_MINUTES", 15))
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success does not wipe the count: it would let anyone with an account clear the
# failures recorded from their address against somebody else's.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "accounts.lockouts.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no banner on every manage.py command
# A try while locked is refused but not counted: the lock ends when the page says.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client's address: REMOTE_ADDR, or behind that many proxies the address the
# first of them put in X-Forwarded-For; else every user would share the proxy's
# address and lock each other out.
AEGIS_PROXY_COUNT = int(os.environ.get("AEGIS_PROXY_COUNT", 0))
AXES_CLIENT_IP_CALLABLE = "accounts.lockouts.client_address"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
WHITENOISE_AUTOREFRESH = (
    DEBUG  # serve from the finders in development, no collectstatic
)
# Files browsers ask for at the site's root (/favicon.ico, /apple-touch-icon.png),
# on pages that do not link an icon (the admin, JSON, a browser's first guess).
WHITENOISE_ROOT = BASE_DIR / "static" / "root"
# Uploads and export snapshots: one folder that web and workers share.
MEDIA_ROOT = Path(os.environ.get("AEGIS_MEDIA_ROOT", DATA_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploaded datasets can be large; they stream to disk, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
AEGIS_MAX_UPLOAD_BYTES = int(os.environ.get("AEGIS_MAX_UPLOAD_BYTES", 2 * 1024**3))
# What one import file may hold: the bytes it unpacks to, the bytes of one line or
# record, the characters of one text field, and how deep its JSON nests. A file past
# any of them is refused (nothing written) before it can fill a worker's memory.
AEGIS_MAX_IMPORT_BYTES = int(os.environ.get("AEGIS_MAX_IMPORT_BYTES", 2 * 1024**3))
AEGIS_MAX_IMPORT_LINE_BYTES = int(
    os.environ.get("AEGIS_MAX_IMPORT_LINE_BYTES", 8 * 1024**2)
)
AEGIS_MAX_IMPORT_FIELD_CHARS = int(
    os.environ.get("AEGIS_MAX_IMPORT_FIELD_CHARS", 1024**2)
)
AEGIS_MAX_IMPORT_JSON_DEPTH = int(os.environ.get("AEGIS_MAX_IMPORT_JSON_DEPTH", 64))

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = (
    False  # htmx reads nothing from it; the token rides in hx-headers
)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
# HTTPS: off unless asked for, since a first deployment may still be on plain HTTP and
# a browser that saw an HSTS header refuses HTTP for that long. With HSTS on,
# subdomains and the preload list are included unless said otherwise.
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "0") or 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", False)
# Behind a proxy that terminates TLS, the header it sets to say the request came in
# over HTTPS ("X-Forwarded-Proto"); without it an SSL redirect would loop. Set it
# only when the proxy always sets (or strips) that header.
if os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_"
        + os.environ["DJANGO_SECURE_PROXY_SSL_HEADER"]
        .strip()
        .upper()
        .replace("-", "_"),
        "https",
    )
# No inline script or style anywhere: what a page runs and how it looks come from
# static/. config.csp relaxes style-src for DRF's browsable API only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # drf-spectacular's, declaring the errors every endpoint can give.
    "DEFAULT_SCHEMA_CLASS": "accounts.api_schema.ErrorAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    # A service's refusal (accounts.refusals.Refused) answers with its status and
    # body; a row that does not exist is a 404.
    "EXCEPTION_HANDLER": "config.error_pages.api_exception_handler",
    # Per address for anonymous clients, per user for signed-in ones; a client over
    # its rate gets 429 with Retry-After. The counts live in the cache (CACHES).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("AEGIS_API_ANON_RATE", "60/min"),
        "user": env_rate("AEGIS_API_USER_RATE", "600/min"),
    },
    "NUM_PROXIES": AEGIS_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Aegis Studio API",
    "DESCRIPTION": "Annotation, jury and export API of Aegis Studio.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema lists every endpoint and field: only for a signed-in client.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# Celery: Redis in production; with nothing set, kombu's SQLAlchemy transport on its
# own SQLite file so a bare machine needs no broker server.
CELERY_BROKER_URL = os.environ.get(
    "CELERY_BROKER_URL", f"sqla+sqlite:///{DATA_DIR / 'celery-broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int] = {}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Longer than the longest task (a jury chunk on a large model), or Redis
    # redelivers a task that is still running.
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = int(
        os.environ.get("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)
    )
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# The cache holds the API's throttle counts, so it must be one for all the web
# processes: Redis (CACHE_URL, else the broker's Redis when the broker is Redis);
# without Redis, each process's memory, which is right for one process (`make run`)
# and lets N gunicorn workers allow up to N times the rate.
CACHE_URL = os.environ.get("CACHE_URL", "") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
)
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "aegis",
        }
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Leases (annotation.models.jobs.Leased): a worker renews its job's lease every third
# of AEGIS_JOB_LEASE_SECONDS; the reaper (Celery beat, every AEGIS_REAPER_SECONDS)
# re-queues work whose lease ran out, up to AEGIS_JOB_MAX_ATTEMPTS, then fails it.
AEGIS_JOB_LEASE_SECONDS = max(3, int(os.environ.get("AEGIS_JOB_LEASE_SECONDS", 60)))
AEGIS_REAPER_SECONDS = max(
    1, int(os.environ.get("AEGIS_REAPER_SECONDS", AEGIS_JOB_LEASE_SECONDS // 2))
)
AEGIS_JOB_MAX_ATTEMPTS = max(1, int(os.environ.get("AEGIS_JOB_MAX_ATTEMPTS", 3)))
CELERY_BEAT_SCHEDULE = {
    "annotation.reap_lost_jobs": {
        "task": "annotation.reap_lost_jobs",
        "schedule": float(AEGIS_REAPER_SECONDS),
        "options": {"queue": "default", "expires": float(AEGIS_REAPER_SECONDS)},
    },
    "jury.reap_lost_chunks": {
        "task": "jury.reap_lost_chunks",
        "schedule": float(AEGIS_REAPER_SECONDS),
        "options": {"queue": "default", "expires": float(AEGIS_REAPER_SECONDS)},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django attaches its own console handler in debug; keep one copy of each line.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # Failures and lockouts are warnings; its info lines come with every login.
        "axes": {"level": "WARNING"},
    },
}
