"""The key management page (/accounts/keys/) sets a key's scopes and image domains."""

from __future__ import annotations

import pytest

from accounts.models import ApiKey
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_create_key_with_scopes_and_domains_shows_it_once(owner_client, owner):
    response = owner_client.post(
        "/accounts/keys/",
        {
            "name": "ci",
            "scopes": ["chat", "uploads"],
            "allowed_image_domains": "Images.Example.com, *.cdn.example.org .example.net",
        },
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(user=owner)
    assert key.scopes == ["chat", "uploads"]
    assert key.allowed_image_domains == [
        "images.example.com",
        "*.cdn.example.org",
        ".example.net",
    ]
    page = response.content.decode()
    assert page.count("glk_" + key.prefix + "_") == 1  # the raw key, shown once
    assert "chat, uploads" in page and "*.cdn.example.org" in page
    assert AuditEvent.objects.filter(action="api_key.configure", object_id=str(key.pk)).exists()
    later = owner_client.get("/accounts/keys/").content.decode()
    assert f"glk_{key.prefix}_" not in later and f"glk_{key.prefix}" in later


def test_invalid_domain_is_refused_with_a_message(owner_client, owner):
    response = owner_client.post(
        "/accounts/keys/", {"name": "bad", "allowed_image_domains": "http://x y.com/"}
    )
    assert response.status_code == 200
    assert "is not a domain name" in response.content.decode()
    assert not ApiKey.objects.filter(user=owner).exists()
