"""Sign-up, login, password change and API keys, through the pages and the command."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import ApiKey
from accounts.services import api_key_authenticate
from audit.models import AuditEvent

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_creates_user_logs_in_and_audits():
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {"username": "nina", "email": "", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    user = get_user_model().objects.get(username="nina")
    assert AuditEvent.objects.filter(action="user.create", object_id=str(user.pk)).exists()
    assert client.get("/").status_code == 200


def test_signup_rejects_weak_password_with_message():
    response = Client().post(
        "/accounts/signup/", {"username": "weak", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 200
    assert b"This password is too short" in response.content
    assert not get_user_model().objects.filter(username="weak").exists()


def test_login_logout_and_chat_requires_login(owner):
    client = Client()
    assert client.get("/").status_code == 302
    response = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_password_change(owner_client, owner):
    response = owner_client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "an even better pass 42",
            "new_password2": "an even better pass 42",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("an even better pass 42")
    event = AuditEvent.objects.get(action="user.password_change")
    assert event.actor_id == owner.pk and "pass" not in str(event.details)


def test_create_api_key_command_prints_raw_key_last_and_stores_only_hash(owner):
    out = io.StringIO()
    call_command("create_api_key", "olivia", stdout=out)
    raw_key = out.getvalue().strip().splitlines()[-1]
    assert raw_key.startswith("glk_")
    key = ApiKey.objects.get(user=owner)
    assert raw_key not in (key.key_hash, key.prefix)
    assert raw_key.split("_")[1] == key.prefix
    assert api_key_authenticate(raw_key) == key
    assert api_key_authenticate(raw_key + "x") is None
    assert AuditEvent.objects.filter(action="api_key.create").count() == 1


def test_create_api_key_for_unknown_user_fails_clearly():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_key", "ghost")


def test_api_key_page_shows_key_once_and_revokes(owner_client, owner, outsider_client):
    response = owner_client.post("/accounts/keys/", {"name": "partner"})
    raw_key = response.context["new_key"]
    assert raw_key.encode() in response.content
    # Listing again shows only the prefix.
    listing = owner_client.get("/accounts/keys/")
    assert raw_key.encode() not in listing.content
    key = ApiKey.objects.get(user=owner)
    assert f"glk_{key.prefix}".encode() in listing.content

    # Another user cannot revoke it.
    assert outsider_client.post(f"/accounts/keys/{key.prefix}/revoke/").status_code == 404
    assert api_key_authenticate(raw_key) == key

    assert owner_client.post(f"/accounts/keys/{key.prefix}/revoke/").status_code == 302
    assert api_key_authenticate(raw_key) is None
    assert AuditEvent.objects.filter(action="api_key.revoke", object_id=str(key.pk)).exists()
