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
    "glimpse.apps.GlimpseConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
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
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 60},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

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

# --- inference --------------------------------------------------------------------------
# "embedded": the engine runs on threads of this process. "celery": tasks on the
# `inference` queue, taken by GPU workers (docs/deploy.md).
INFERENCE_MODE = env_str("INFERENCE_MODE", "embedded")
# "lite" (OCR + SmolLM2, CPU, no download) or "vlm" (transformers image-text-to-text).
INFERENCE_ENGINE = env_str("INFERENCE_ENGINE", "lite")
MODEL_ID = env_str("MODEL_ID", "zai-org/GLM-4.6V-Flash")
INFERENCE_DEVICE = env_str("INFERENCE_DEVICE", "")  # "" = cuda when available
INFERENCE_MAX_BATCH = env_int("INFERENCE_MAX_BATCH", 32)
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
