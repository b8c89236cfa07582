"""Settings for the lead-distribution service, read from the environment.

No DATABASE_URL: a SQLite file next to the project, with IMMEDIATE transactions so
the engine's read-then-write blocks are serialised there too. DATABASE_URL: PostgreSQL
through psycopg 3 with persistent connections.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate: requests per second, minute, hour or day ("600/min")."""
    raw = env_str(name, default)
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", raw):
        raise ImproperlyConfigured(f"{name} must look like 600/min or 10/s, got {raw!r}")
    return raw


DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
# The placeholder .env.example carries: copied as it is, it is no secret either.
EXAMPLE_SECRET_KEY = "replace-with-a-long-random-string"

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# PRODUCTION=1 (the Docker image sets it) refuses to start with settings fit only for a
# developer's machine. Without it the defaults serve `make run` and `make test`.
PRODUCTION = env_bool("PRODUCTION", False)


def production_problems() -> list[str]:
    problems = []
    if DEBUG:
        problems.append("DEBUG is on")
    if SECRET_KEY in {"", DEV_SECRET_KEY, EXAMPLE_SECRET_KEY}:
        problems.append("SECRET_KEY is not set")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS is empty")
    return problems


if PRODUCTION and (problems := production_problems()):
    raise ImproperlyConfigured(f"PRODUCTION=1 refuses to start: {'; '.join(problems)}.")

# HTTPS only (the default in production; HTTPS_ONLY=0 for plain HTTP on a private host):
# redirect to https, cookies that never travel over plain HTTP, and HSTS.
HTTPS_ONLY = env_bool("HTTPS_ONLY", PRODUCTION)
SECURE_SSL_REDIRECT = HTTPS_ONLY
# Load balancers probe health over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS_ONLY
SECURE_HSTS_PRELOAD = HTTPS_ONLY
# Only behind a proxy that terminates TLS and sets this header itself: a client could
# otherwise claim https.
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Only its translations, for desk's "... ago" (templatetags/desk.py).
    "django.contrib.humanize",
    # Trigram indexes on UPPER(column) for lead search (OpClass in Lead.Meta.indexes).
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_htmx",
    "core",
    "events",
    "desk",
    "distribution",
    "leads",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise: static files are not requests worth a log line.
    "core.middleware.RequestLogMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language), or the one picked in a page's header.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.middleware.StaffOnlyAdminMiddleware",
    # After authentication: an operator's own zone, else the browser's.
    "desk.time_zones.ViewerTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Admin logins: django-axes counts failures per (username, IP address) in the database,
# so every worker and host sees them; after AXES_FAILURE_LIMIT the pair is refused for
# the cool-off time even with the right password. Per pair, so an attacker elsewhere
# cannot lock a member of staff out. Behind a proxy every client has the proxy's
# address: the limit then applies per username.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Lockouts show in the admin (Axes: access attempts); the logs keep to request lines.
AXES_VERBOSE = False

# Operators sign in to the desk; staff may too (the admin keeps its own login page).
LOGIN_URL = "desk:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "desk:login"
# Where this service is reached, for links printed outside a request (a new operator
# login's set-password link).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

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


def sqlite_database(name: str) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            # IMMEDIATE takes the write lock when the atomic block starts, so two
            # assignments cannot both read an operator's load before either writes.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # A file, not memory, so the concurrency tests' threads share one database.
        "TEST": {"NAME": env_str("SQLITE_TEST_PATH", str(BASE_DIR / ".test-db.sqlite3"))},
    }


def postgresql_database(url: str) -> dict:
    database = dj_database_url.parse(
        url, conn_max_age=env_int("DB_CONN_MAX_AGE", 600), conn_health_checks=True
    )
    options = database.setdefault("OPTIONS", {})
    if env_bool("DB_PREPARED_STATEMENTS", True):
        # Parameters bound on the server, so the same query has the same text and psycopg
        # prepares it after 5 runs on a connection: PostgreSQL then skips parsing and
        # planning, about half its CPU on the intake. Turn off behind a pooler in
        # transaction mode that cannot keep them (PgBouncer before 1.21).
        options.update({"server_side_binding": True, "prepare_threshold": 5})
    # While PostgreSQL is unreachable a request fails within this many seconds (a 503)
    # rather than waiting on the operating system's TCP timeout.
    options.setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 3))
    return database


DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL.startswith(("postgres://", "postgresql://")):
    DATABASES = {"default": postgresql_database(DATABASE_URL)}
elif DATABASE_URL.startswith("sqlite://"):
    DATABASES = {"default": sqlite_database(dj_database_url.parse(DATABASE_URL)["NAME"])}
elif DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL must be postgres://user@host:5432/name or sqlite:///path/to/file, "
        f"got {DATABASE_URL.split('://')[0]}://..."
    )
else:
    DATABASES = {"default": sqlite_database(env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The largest request body accepted, in bytes, refused before it is read: a 413 from the
# API (core.api), a 400 elsewhere. Bots' contacts are a few kilobytes.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 256 * 1024)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Pages, API messages and command output in Russian or English: the browser's language,
# else LANGUAGE_CODE. The catalogues are locale/*/LC_MESSAGES/django.po; `make` and the
# image compile them.
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic puts them for WhiteNoise (the entrypoint runs it).
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REST_FRAMEWORK = {
    # Bot keys and tokens before the session: an anonymous or bad-key request then gets
    # 401 with `WWW-Authenticate: Bearer`, not the 403 session authentication gives.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "distribution.api.authentication.SourceKeyAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_THROTTLE_CLASSES": ["distribution.api.authentication.SourceKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.api.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# /api/events/ serves an event once it is this old: a transaction that took its id earlier
# has committed by then (transactions here last milliseconds).
EVENT_FEED_SETTLE_SECONDS = env_int("EVENT_FEED_SETTLE_SECONDS", 2)

# Webhooks (events/webhooks.py). Endpoints on private, loopback or link-local addresses
# are refused in production unless allowed. A request gets WEBHOOK_TIMEOUT_SECONDS; a
# worker holds an endpoint for WEBHOOK_LEASE_SECONDS while it sends (then another may
# retry, after a crash). After a failed attempt the endpoint waits BACKOFF_BASE * 2^(n-1)
# for its n-th failure in a row, at most BACKOFF_CAP; a delivery is given up (failed)
# WEBHOOK_RETRY_FOR_HOURS after it was made.
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", not PRODUCTION)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5)
WEBHOOK_LEASE = timedelta(seconds=env_int("WEBHOOK_LEASE_SECONDS", 30))
WEBHOOK_BACKOFF_BASE = timedelta(seconds=env_int("WEBHOOK_BACKOFF_BASE_SECONDS", 5))
WEBHOOK_BACKOFF_CAP = timedelta(seconds=env_int("WEBHOOK_BACKOFF_CAP_SECONDS", 600))
WEBHOOK_RETRY_FOR = timedelta(hours=env_int("WEBHOOK_RETRY_FOR_HOURS", 24))
if WEBHOOK_LEASE.total_seconds() <= 2 * WEBHOOK_TIMEOUT_SECONDS + 2:
    # A send outliving its lease could be made again by another worker at the same time
    # (see events.webhooks.SEND_BUDGET_SECONDS).
    raise ImproperlyConfigured(
        "WEBHOOK_LEASE_SECONDS must be over 2 * WEBHOOK_TIMEOUT_SECONDS + 2."
    )

# An operator who lets this many offers in a row expire is set away (sources with an
# accept timeout make offers).
OFFER_MISSES_BEFORE_AWAY = env_int("OFFER_MISSES_BEFORE_AWAY", 2)
# An available operator signed in to the desk whose desk has not reached the server for
# this long is set away by the worker (the desk polls every few seconds).
PRESENCE_TIMEOUT = timedelta(seconds=env_int("PRESENCE_TIMEOUT_SECONDS", 90))
# Fair bursts: at most BURST_LIMIT new contacts per operator per BURST_WINDOW_MINUTES,
# for operators that set no burst limit of their own. 0 (the default): no limit.
BURST_LIMIT = env_int("BURST_LIMIT", 0) or None
BURST_WINDOW_MINUTES = env_int("BURST_WINDOW_MINUTES", 10)
if BURST_WINDOW_MINUTES <= 0 or (BURST_LIMIT is not None and BURST_LIMIT < 0):
    raise ImproperlyConfigured("BURST_WINDOW_MINUTES must be positive, BURST_LIMIT not negative.")

# Requests per source for bots' API keys (all keys of one source share it), counted in
# the default cache below, which every worker and host share.
API_BOT_THROTTLE_RATE = env_rate("API_BOT_THROTTLE_RATE", "600/min")


def cache_settings(redis_url: str) -> dict:
    """Redis where REDIS_URL names one; otherwise a table in the database (created by the
    migration distribution.0013, or `manage.py createcachetable` after a switch)."""
    if not redis_url:
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "crm_cache",
            # A row per source's throttle. Past this many, each write deletes a third of
            # the rows, and with them those sources' counts.
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        }
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            "REDIS_URL must be redis://host:6379/0, rediss://... or unix://..., "
            f"got {redis_url.split('://')[0]}://..."
        )
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url,
        # An unreachable Redis fails a bot's request within a second, not the TCP timeout.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }


CACHES = {"default": cache_settings(env_str("REDIS_URL", ""))}

SPECTACULAR_SETTINGS = {
    "TITLE": "Lead distribution API",
    "DESCRIPTION": (
        "Contacts from bots and forms, handed to operators by weight and load limit. "
        "Staff: `Authorization: Token <key>` or the admin session. "
        "Bots: `Authorization: Bearer <source API key>`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs are public, and a stale key must not lock them.
    "SERVE_AUTHENTICATION": [],
    # Request bodies get their own components, without the read-only fields.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the sidecar's static files: the machine may have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ContactStatusEnum": "distribution.models.Contact.Status",
        "SourceStrategyEnum": "distribution.models.Source.Strategy",
        "OperatorStatusEnum": "distribution.models.Operator.Status",
        "ContactHistoryActionEnum": "distribution.models.ContactHistory.Action",
        "SourceStickyEnum": "distribution.models.Source.Sticky",
    },
}

# How long an intake's Idempotency-Key (or client_message_id) is remembered: a retry
# within it returns the first contact; after it the key may be used again.
IDEMPOTENCY_KEY_TTL = timedelta(hours=env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24))

# Region used to read phone numbers written without a country code ("8 912 ...").
LEADS_DEFAULT_PHONE_REGION = env_str("LEADS_DEFAULT_PHONE_REGION", "RU")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"refused_host": {"()": "core.logs.RefusedHost"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "refused_host": {"class": "logging.StreamHandler", "filters": ["refused_host"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler (DEBUG only) printed each line a second time
        # beside the root's; one handler here.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Every request is one line of crm.requests already: Django (and runserver's
        # access log) add only its 5xx, with the traceback.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.security.DisallowedHost": {"handlers": ["refused_host"], "propagate": False},
    },
}
