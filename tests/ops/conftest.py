"""Fixtures for the operations tests: the production topology as real processes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from ..servers import base_env
from .helpers import RedisServer


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def celery_env(tmp_path, redis_server, settings):
    """Environment of every process of a celery topology on the private Redis. The
    fixed-rate engine writes 10 tokens a second, so an answer streams for seconds."""
    settings.MEDIA_ROOT = tmp_path / "media"

    def make(**overrides: str) -> dict[str, str]:
        defaults = {
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_server.url,
            "INFERENCE_MODE": "celery",
            "INFERENCE_ENGINE": "fixedrate",
            "FIXEDRATE_TOKENS_PER_SECOND": "10",
            "FIXEDRATE_ANSWER_TOKENS": "40",
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "DATA_DIR": str(tmp_path / "data"),
            # Sessions made here carry an auth hash keyed on the secret: share it.
            "SECRET_KEY": settings.SECRET_KEY,
            "ANSWER_LEASE_TTL": "3",
            "HEARTBEAT_INTERVAL": "1",
        }
        return base_env(**{**defaults, **overrides})

    return make


@pytest.fixture
def cookie_for():
    def make(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    return make
