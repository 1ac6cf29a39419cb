"""API test helpers: keys for the personas, clients that send them, the error shape."""

from __future__ import annotations

import base64

import httpx
import pytest
from django.test import Client

from accounts.services import api_key_create

QUESTION = "Which order is still pending?"


@pytest.fixture(autouse=True)
def api_limits(settings):
    # Generous defaults so tests only meet the limits they are about.
    settings.API_KEY_RATE_PER_MINUTE = 1000
    settings.API_USER_RATE_PER_MINUTE = 1000
    settings.REDIS_URL = ""  # counters in the database unless a test says otherwise


@pytest.fixture
def owner_key(owner):
    """(ApiKey, raw key) for the owner."""
    return api_key_create(user=owner, name="partner")


@pytest.fixture
def outsider_key(outsider):
    return api_key_create(user=outsider, name="other partner")


def bearer(raw_key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}


@pytest.fixture
def api(owner_key):
    """A Django test client that sends the owner's key."""
    return Client(headers={"Authorization": f"Bearer {owner_key[1]}"})


@pytest.fixture
def outsider_api(outsider_key):
    return Client(headers={"Authorization": f"Bearer {outsider_key[1]}"})


@pytest.fixture
async def asgi_http(owner_key):
    """An httpx client bound to the real ASGI application (glimpse.asgi), in-process, with
    the owner's key. Requests go through BindLoop, so the embedded engine's events reach
    the in-memory channel layer on this test's loop."""
    from glimpse.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {owner_key[1]}"},
        timeout=120,
    ) as client:
        yield client


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The one error shape: {"error": {"type", "message", "code"}}, as JSON."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"type", "message", "code"}, body
    assert all(isinstance(v, str) and v for v in body["error"].values()), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
