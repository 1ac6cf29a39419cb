"""Glimpse settings: one module, every value from the environment.

The defaults are the embedded ones (SQLite in ./data, in-memory channel layer, the lite
engine on a thread of the server process) so `make run` works on a fresh machine.
DATABASE_URL, REDIS_URL, INFERENCE_MODE=celery and MODEL_ID switch to production parts.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import dj_database_url

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# "production" turns on the deploy checks in glimpse/checks.py.
GLIMPSE_ENV = env_str("GLIMPSE_ENV", "development")
DEBUG = env_bool("DEBUG", GLIMPSE_ENV != "production")


def _embedded_secret_key() -> str:
    # The embedded default must not ship a well-known key, so a random one is made
    # on first start and kept beside the database. Production sets SECRET_KEY.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY") or (
    "" if GLIMPSE_ENV == "production" else _embedded_secret_key()
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "accounts",
    "audit",
    "assistant",
    "review",
    "inference",
    "ops",
    "policy",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: the docs work offline
    "api",
    "glimpse.apps.GlimpseConfig",
]

MIDDLEWARE = [
    # Outermost: counts every response (also the ones below refuse) and turns a lost
    # database into a clear 503 instead of a 500 (ops/middleware.py).
    "ops.middleware.RequestMetricsMiddleware",
    "ops.middleware.DatabaseUnavailableMiddleware",
    "ops.middleware.StartWatchdogMiddleware",
    # Request id and client IP for the audit trail; audits admin reads of conversations.
    "audit.middleware.RequestContextMiddleware",
    # /v1/ and /api/: body size limit, and Django's own errors as JSON (glimpse/api_errors.py).
    "glimpse.api_errors.ApiErrorMiddleware",
    # Django's own middlewares, minus needless thread hops under ASGI; sessions, CSRF,
    # the user and messages step aside on the partner API (glimpse/django_middleware.py).
    "glimpse.django_middleware.InlineSecurityMiddleware",
    "glimpse.static_files.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "glimpse.django_middleware.BrowserSessionMiddleware",
    "glimpse.django_middleware.InlineCommonMiddleware",
    "glimpse.django_middleware.BrowserCsrfViewMiddleware",
    "glimpse.django_middleware.BrowserAuthenticationMiddleware",
    "glimpse.django_middleware.BrowserMessageMiddleware",
    "glimpse.django_middleware.InlineXFrameOptionsMiddleware",
]

ROOT_URLCONF = "glimpse.urls"
ASGI_APPLICATION = "glimpse.asgi.application"
WSGI_APPLICATION = None

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
    }
]

# --- database -----------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # Persistent connections save a connect per request; tests set 0 so no thread keeps
    # one open on the test database when it is dropped.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "glimpse.sqlite3",
            "OPTIONS": {
                # The engine thread writes answers while requests read: WAL lets readers
                # proceed, IMMEDIATE avoids "database is locked" on write upgrades.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channels, celery -------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis' layer, receiving in batches (glimpse/channel_layer.py).
            "BACKEND": "glimpse.channel_layer.StreamingRedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 60},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Redis connections one process's channel layer opens at most; a burst beyond them waits
# up to the timeout for a free one.
CHANNEL_LAYER_MAX_CONNECTIONS = env_int("CHANNEL_LAYER_MAX_CONNECTIONS", 200)
CHANNEL_LAYER_POOL_TIMEOUT = env_float("CHANNEL_LAYER_POOL_TIMEOUT", 10.0)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"inference.tasks.*": {"queue": "inference"}}
# An answer may take minutes; the broker must not hand the task to a second worker
# while the first is still streaming it.
CELERY_TASK_TIME_LIMIT = env_int("INFERENCE_TASK_TIME_LIMIT", 600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 300}
# --- reliability and operations (ops/, docs/deploy.md) -----------------------------------
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # An unreachable database must fail a request in seconds (a clear 503), not hang.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5)
    )
    if env_bool("DB_POOL", True):
        # A pool per process: API requests and answer runners work on pool threads that
        # hand their connection back after each step (so a thousand open streams never
        # hold a thousand connections); without a pool each step paid a new connection,
        # about 3 ms, several times per request.
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them instead
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": env_int("DB_POOL_MIN", 2),
            "max_size": env_int("DB_POOL_MAX", 20),
            # Waiting this long for a free connection is the "database unavailable" case.
            # (conn_health_checks above makes Django check each connection it takes.)
            "timeout": env_float("DB_POOL_TIMEOUT", 5.0),
        }
if REDIS_URL:
    # redis-py 8 gives every read a 5 s timeout by default, the same 5 s that
    # channels_redis blocks in BZPOPMIN waiting for a message: a websocket idle for 5 s
    # then died with 1011. Reads get room beyond the block; a dead Redis still surfaces
    # (the socket closes, the page reconnects and catches up).
    CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [
        {"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 5}
    ]
# Celery's thread pool (what GPU workers run) does not enforce CELERY_TASK_TIME_LIMIT;
# the answer watchdog (ops/watchdog.py) fails an answer that streams longer, so the
# visibility timeout above stays longer than any answer and a task is never handed to a
# second worker while the first still streams it. Tests shorten the timeout to see a
# redelivery in seconds.
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = env_int(
    "BROKER_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 300
)
# How often a worker looks for unacknowledged tasks of dead workers to put back.
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = env_int("BROKER_RESTORE_INTERVAL", 10)
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_throttle"] = 1
# Redis restarted: keep retrying forever instead of exiting, and keep streaming answers
# running (their ack goes out on the new connection; the runner is idempotent anyway).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULE = {
    # A second line behind the web processes' watchdog thread, for deployments that
    # turn that off (ANSWER_WATCHDOG=0) and run a small CPU worker on the `ops` queue.
    "answers-sweep": {
        "task": "ops.answers_sweep",
        "schedule": env_float("ANSWER_SWEEP_INTERVAL", 5.0),
        "options": {"queue": "ops", "expires": 30},
    },
}
CELERY_TASK_ROUTES["ops.*"] = {"queue": "ops"}

# --- inference --------------------------------------------------------------------------
# "embedded": the engine runs on threads of this process. "celery": tasks on the
# `inference` queue, taken by GPU workers (docs/deploy.md).
INFERENCE_MODE = env_str("INFERENCE_MODE", "embedded")
# "lite" (OCR + SmolLM2, CPU, no download) or "vlm" (transformers image-text-to-text).
INFERENCE_ENGINE = env_str("INFERENCE_ENGINE", "lite")
MODEL_ID = env_str("MODEL_ID", "zai-org/GLM-4.6V-Flash")
INFERENCE_DEVICE = env_str("INFERENCE_DEVICE", "")  # "" = cuda when available
INFERENCE_MAX_BATCH = env_int("INFERENCE_MAX_BATCH", 32)
# Longest conversation (prompt + answer, in tokens) a slot of the GPU engine's KV cache holds.
INFERENCE_MAX_SEQ_LEN = env_int("INFERENCE_MAX_SEQ_LEN", 8192)
# New prompts prefilled together in one forward: at most this many, and this many tokens.
INFERENCE_PREFILL_BATCH = env_int("INFERENCE_PREFILL_BATCH", 16)
INFERENCE_PREFILL_TOKENS = env_int("INFERENCE_PREFILL_TOKENS", 20480)
EMBEDDED_CONCURRENCY = env_int("EMBEDDED_CONCURRENCY", 4)
# Load the engine when the server starts instead of on the first question.
INFERENCE_WARMUP = env_bool("INFERENCE_WARMUP", True)
# Start-up work of the embedded mode (recovering interrupted answers, warming the engine).
# Off under pytest, where the ASGI module is imported before the test database exists.
RUN_STARTUP_TASKS = env_bool("RUN_STARTUP_TASKS", "pytest" not in sys.modules)
LITE_MODEL_CACHE = Path(env_str("LITE_MODEL_CACHE", str(DATA_DIR / "models" / "smollm2")))
# How often streamed text is flushed to the client, in seconds: coalescing keeps the
# number of channel-layer messages low without making the stream look choppy.
STREAM_FLUSH_INTERVAL = env_float("STREAM_FLUSH_INTERVAL", 0.03)
DEFAULT_MAX_NEW_TOKENS = env_int("DEFAULT_MAX_NEW_TOKENS", 512)

# --- reliability and operations: health, metrics, overload, faults, answer cache -----
# Workers write `glimpse:engine:<node>` every HEARTBEAT_INTERVAL seconds; /readyz wants
# one younger than HEARTBEAT_MAX_AGE.
HEARTBEAT_INTERVAL = env_float("HEARTBEAT_INTERVAL", 2.0)
HEARTBEAT_MAX_AGE = env_float("HEARTBEAT_MAX_AGE", 10.0)
# A streaming answer holds a lease in Redis, refreshed every ANSWER_LEASE_REFRESH s; the
# watchdog fails an answer whose lease has been gone for ANSWER_LEASE_TTL seconds.
ANSWER_LEASE_TTL = env_float("ANSWER_LEASE_TTL", 5.0)
ANSWER_LEASE_REFRESH = env_float("ANSWER_LEASE_REFRESH", 1.0)
# An answer still pending (no worker took it) after this many seconds is failed.
ANSWER_PENDING_DEADLINE = env_float("ANSWER_PENDING_DEADLINE", 120.0)
# An answer streaming for longer than this is failed (the thread pool has no time limit).
ANSWER_MAX_SECONDS = env_float("ANSWER_MAX_SECONDS", float(CELERY_TASK_TIME_LIMIT))
# The watchdog thread in each web process (celery mode); runs are coordinated in Redis.
ANSWER_WATCHDOG = env_bool("ANSWER_WATCHDOG", True)
WATCHDOG_INTERVAL = env_float("WATCHDOG_INTERVAL", 1.0)
# Overload: answers waiting beyond these are refused at once with Retry-After.
INFERENCE_QUEUE_LIMIT = env_int("INFERENCE_QUEUE_LIMIT", 256)  # celery: tasks queued
EMBEDDED_QUEUE_LIMIT = env_int("EMBEDDED_QUEUE_LIMIT", 16)  # embedded: beyond the pool
OVERLOAD_RETRY_AFTER = env_int("OVERLOAD_RETRY_AFTER", 5)
# When saturated, answer with the lite engine in this process instead of refusing.
LITE_FALLBACK = env_bool("LITE_FALLBACK", False)
LITE_FALLBACK_ENGINE = env_str("LITE_FALLBACK_ENGINE", "lite")
LITE_FALLBACK_CONCURRENCY = env_int("LITE_FALLBACK_CONCURRENCY", 2)
# Answer cache (inference/cache.py): off, per user, or shared by everyone.
ANSWER_CACHE = env_str("ANSWER_CACHE", "off")
ANSWER_CACHE_TTL = env_int("ANSWER_CACHE_TTL", 24 * 3600)
# Hamming distance (of 512 bits) within which two screenshots count as the same.
ANSWER_CACHE_MAX_DISTANCE = env_int("ANSWER_CACHE_MAX_DISTANCE", 3)
# Part of every cache key: bump it when the weights behind an unchanged MODEL_ID change.
MODEL_REVISION = env_str("MODEL_REVISION", "")
# The fixed-rate engine (INFERENCE_ENGINE=fixedrate) for load and fault tests.
FIXEDRATE_TOKENS_PER_SECOND = env_float("FIXEDRATE_TOKENS_PER_SECOND", 20.0)
FIXEDRATE_FIRST_TOKEN_MS = env_float("FIXEDRATE_FIRST_TOKEN_MS", 0.0)
FIXEDRATE_ANSWER_TOKENS = env_int("FIXEDRATE_ANSWER_TOKENS", 32)
FIXEDRATE_STAMP = env_bool("FIXEDRATE_STAMP", False)
FIXEDRATE_LOAD_SECONDS = env_float("FIXEDRATE_LOAD_SECONDS", 0.0)
# /metrics: a bearer token, or a client address in these networks (default loopback).
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])

# --- uploads ------------------------------------------------------------------------------
# Media lives in the data folder, outside any web root; files are served by a view that
# checks ownership, never by the static file server.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()
MEDIA_URL = None
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 40_000_000)
IMAGE_MODEL_LONGEST_SIDE = env_int("IMAGE_MODEL_LONGEST_SIDE", 1024)
IMAGE_ENHANCE_DOCUMENTS = env_bool("IMAGE_ENHANCE_DOCUMENTS", False)
# Django refuses bodies above this before our code runs; leave room for multipart framing.
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
MAX_PROMPT_CHARS = env_int("MAX_PROMPT_CHARS", 8000)

# --- safety: PII redaction, image URLs, moderation (docs/safety.md) -------------------------
# Box out PII that OCR finds in screenshots before they are stored. Off only for tests of
# other things or deployments that never see personal data: no OCR then.
PII_REDACT_IMAGES = env_bool("PII_REDACT_IMAGES", True)
# Screenshots larger than this (longest side) are OCR'd from a downscaled copy.
SAFETY_OCR_MAX_SIDE = env_int("SAFETY_OCR_MAX_SIDE", 4096)
# Keep the unredacted model copy of a screenshot after its answer is final. Off: it is
# replaced by the redacted version, and never-asked uploads lose theirs after the TTL.
KEEP_UNREDACTED_IMAGES = env_bool("KEEP_UNREDACTED_IMAGES", False)
UNREDACTED_IMAGE_TTL = env_int("UNREDACTED_IMAGE_TTL", 3600)
# Let the model see the question as typed (PII included). Embedded mode only: the raw text
# is handed to the engine thread in memory and never stored; in celery mode it would sit
# in the Redis broker, so there the model always sees the redacted question.
PII_MODEL_SEES_RAW_PROMPT = env_bool("PII_MODEL_SEES_RAW_PROMPT", False)
# Image URLs (REST API): allowlist entries "example.com", "*.example.com", ".example.com";
# empty refuses every URL. The admin's image URL rules add to it.
IMAGE_URL_ALLOWED_DOMAINS = env_list("IMAGE_URL_ALLOWED_DOMAINS", [])
IMAGE_URL_ALLOW_HTTP = env_bool("IMAGE_URL_ALLOW_HTTP", False)
IMAGE_URL_MAX_BYTES = env_int("IMAGE_URL_MAX_BYTES", UPLOAD_MAX_BYTES)
IMAGE_URL_TIMEOUT = env_float("IMAGE_URL_TIMEOUT", 10.0)
IMAGE_URL_MAX_REDIRECTS = env_int("IMAGE_URL_MAX_REDIRECTS", 3)
# Moderation checkers, strictest verdict wins (assistant/safety/moderation.py).
MODERATION_CHECKERS = env_list(
    "MODERATION_CHECKERS", ["assistant.safety.moderation.TermListChecker"]
)
MODERATION_HTTP_URL = env_str("MODERATION_HTTP_URL")
MODERATION_HTTP_TOKEN = env_str("MODERATION_HTTP_TOKEN")
MODERATION_HTTP_TIMEOUT = env_float("MODERATION_HTTP_TIMEOUT", 3.0)
MODERATION_HTTP_FAIL_OPEN = env_bool("MODERATION_HTTP_FAIL_OPEN", False)
# With a non-streaming checker (the external classifier), answers are released in
# segments the checker has approved: a sentence, a line, or at most this many characters.
MODERATION_SEGMENT_CHARS = env_int("MODERATION_SEGMENT_CHARS", 300)

# --- review, audit trail, retention (docs/review.md) ----------------------------------------
# Share of completed answers put in the review queue at random (0.01 = one in a hundred).
REVIEW_SAMPLE_RATE = env_float("REVIEW_SAMPLE_RATE", 0.01)
# Days to keep screenshots (rows and files), conversations' messages, and audit events;
# 0 keeps forever. Audit events lose their details and IP after RETENTION_MESSAGE_DAYS.
RETENTION_UPLOAD_DAYS = env_int("RETENTION_UPLOAD_DAYS", 30)
RETENTION_MESSAGE_DAYS = env_int("RETENTION_MESSAGE_DAYS", 90)
RETENTION_AUDIT_DAYS = env_int("RETENTION_AUDIT_DAYS", 400)
# Seconds between purges run by Celery beat (a purge only removes what has expired).
RETENTION_PURGE_INTERVAL = env_float("RETENTION_PURGE_INTERVAL", 6 * 3600)
# Reverse proxies in front of daphne that append to X-Forwarded-For; 0 trusts none and
# records REMOTE_ADDR as the client address.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Seconds between sweeps of unredacted screenshot copies nobody asked about in time.
SAFETY_SWEEP_INTERVAL = env_float("SAFETY_SWEEP_INTERVAL", 600)
# Beat's maintenance runs on the `ops` queue, which the small CPU worker of
# docs/deploy/glimpse-ops-worker.service takes; the embedded mode (no beat) runs the same
# jobs from the web process's watchdog thread (ops/periodic.py).
CELERY_BEAT_SCHEDULE["retention-purge"] = {
    "task": "audit.retention_purge",
    "schedule": RETENTION_PURGE_INTERVAL,
    "options": {"queue": "ops", "expires": RETENTION_PURGE_INTERVAL},
}
CELERY_BEAT_SCHEDULE["safety-sweep"] = {
    "task": "policy.safety_sweep",
    "schedule": SAFETY_SWEEP_INTERVAL,
    "options": {"queue": "ops", "expires": SAFETY_SWEEP_INTERVAL},
}
CELERY_TASK_ROUTES["audit.*"] = {"queue": "ops"}
CELERY_TASK_ROUTES["policy.*"] = {"queue": "ops"}

# --- auth ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("FAST_PASSWORD_HASHER", False):
    # Tests only: MD5 keeps thousands of logins fast. Never set in production.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", GLIMPSE_ENV == "production")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "glimpse.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- partner API (api/, docs/api.md) ---------------------------------------------------------
# Largest request body on /v1/: a base64 image (4/3 of UPLOAD_MAX_BYTES) plus the JSON.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", UPLOAD_MAX_BYTES * 4 // 3 + 1024 * 1024)
# Seconds an API request waits for its answer before stopping it (504).
API_ANSWER_TIMEOUT = env_float("API_ANSWER_TIMEOUT", 300.0)
API_UNAVAILABLE_RETRY_AFTER = env_int("API_UNAVAILABLE_RETRY_AFTER", 10)
API_CONCURRENCY_RETRY_AFTER = env_int("API_CONCURRENCY_RETRY_AFTER", 2)
# Limits; 0 turns one off. Per-key values set on a key (admin) replace the API_KEY_* ones.
API_KEY_RATE_PER_MINUTE = env_int("API_KEY_RATE_PER_MINUTE", 60)
API_USER_RATE_PER_MINUTE = env_int("API_USER_RATE_PER_MINUTE", 120)
API_KEY_DAILY_REQUESTS = env_int("API_KEY_DAILY_REQUESTS", 2000)
API_USER_DAILY_REQUESTS = env_int("API_USER_DAILY_REQUESTS", 5000)
API_KEY_DAILY_TOKENS = env_int("API_KEY_DAILY_TOKENS", 1_000_000)
API_USER_DAILY_TOKENS = env_int("API_USER_DAILY_TOKENS", 2_000_000)
API_KEY_MAX_CONCURRENT = env_int("API_KEY_MAX_CONCURRENT", 4)

SPECTACULAR_SETTINGS = {
    "TITLE": "Glimpse API",
    "DESCRIPTION": "Ask a vision-language model about screenshots. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Request bodies never reach the log: Django's request logger prints only paths.
        "django.request": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
WHITENOISE_USE_FINDERS = DEBUG  # serve static/ without collectstatic while developing
