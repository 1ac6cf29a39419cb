"""Refusals leave a trace: an image URL the fetcher refuses on the API
(`safety.url_refused`) and a hostile upload on the chat page or the API
(`safety.upload_refused`) are audited with the reason code, and never with what could be
personal or secret: no URL path, query, user name or password (only the host), no file
content, name or declared type.

Through the real endpoints; the image URLs' "internet" is tests/fakeweb.py."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.services import api_key_create
from assistant.models import Upload
from audit.models import AuditEvent
from tests.safety import test_flow
from tests.safety.test_images import encode, screenshot

# The other threads the async API views use need committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "tok3nSecretValue"  # what a signed image URL carries in its query
PNG = encode(screenshot((64, 64)), "PNG")

engine = test_flow.engine  # the scripted engine fixture


@pytest.fixture
def api_key(owner, settings):
    settings.API_KEY_RATE_PER_MINUTE = 1000
    settings.API_USER_RATE_PER_MINUTE = 1000
    settings.REDIS_URL = ""  # rate counters in the database
    return api_key_create(user=owner, name="partner")


@pytest.fixture
def api(api_key):
    return Client(headers={"Authorization": f"Bearer {api_key[1]}"})


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def everything_audited() -> str:
    return json.dumps(
        list(AuditEvent.objects.values("action", "object_type", "object_id", "details")),
        default=str,
    )


# --- image URLs on the API -------------------------------------------------------------------


def _domain(fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    fakeweb.serve("https://evil.example.net/a.png", PNG)
    return f"https://evil.example.net/private/a.png?sig={SECRET}#x"


def _internal_dns(fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = [".example.com"]
    fakeweb.dns("intranet.example.com", "10.20.30.40")
    return f"https://intranet.example.com/admin/export?session={SECRET}"


def _ip_literal(fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = [".example.com"]
    return f"https://169.254.169.254/latest/meta-data/{SECRET}"


def _credentials(fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    return f"https://admin:{SECRET}@images.example.com/a.png"


def _too_large(fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    settings.UPLOAD_MAX_BYTES = 10_000
    return fakeweb.serve(f"https://images.example.com/big.png?key={SECRET}", PNG + b"\0" * 20_000)


def _not_an_image(fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    page = b"<html><script>alert(1)</script></html>"
    return fakeweb.serve(f"https://images.example.com/page.png?key={SECRET}", page)


def _disabled(fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = []
    return f"https://images.example.com/a.png?key={SECRET}"


URL_REFUSALS = [
    pytest.param(_domain, 403, "domain_not_allowed", "evil.example.net", id="domain"),
    pytest.param(
        _internal_dns, 403, "address_not_allowed", "intranet.example.com", id="internal-dns"
    ),
    # The audit trail's own guard redacts IP addresses in details; the code tells why.
    pytest.param(_ip_literal, 400, "ip_literal_not_allowed", "[IP_ADDRESS]", id="ip-literal"),
    pytest.param(_credentials, 400, "invalid_url", "images.example.com", id="user-password"),
    pytest.param(_too_large, 413, "too_large", "images.example.com", id="size"),
    pytest.param(_not_an_image, 415, "not_an_image", "images.example.com", id="type"),
    pytest.param(_disabled, 403, "url_fetch_disabled", "images.example.com", id="disabled"),
]


@pytest.mark.parametrize(("arrange", "status", "code", "host"), URL_REFUSALS)
def test_refused_image_url_is_audited_with_reason_and_host_only(
    api, api_key, owner, fakeweb, settings, arrange, status, code, host
):
    url = arrange(fakeweb, settings)
    response = api.post(
        "/v1/chat", {"image_url": url, "prompt": "What is this?"}, content_type="application/json"
    )
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code

    (event,) = events("safety.url_refused")
    assert event.actor_id == owner.pk
    assert (event.object_type, event.object_id) == ("apikey", str(api_key[0].pk))
    assert event.details == {
        "reason": code,
        "status": status,
        "host": host,
        "key": api_key[0].prefix,
    }
    # Nothing of the URL but its host, anywhere in the trail.
    trail = everything_audited()
    for part in (SECRET, "private", "admin", "meta-data", "big.png", "page.png", "a.png"):
        assert part not in trail, part
    assert not Upload.objects.exists()


@pytest.mark.parametrize(
    ("target", "code", "hop_host"),
    [
        (f"https://evil.example.net/x.png?t={SECRET}", "domain_not_allowed", "evil.example.net"),
        # The audit trail's own guard redacts IP addresses in details.
        (f"https://10.0.0.5/x.png?t={SECRET}", "ip_literal_not_allowed", "[IP_ADDRESS]"),
    ],
    ids=["other-domain", "internal-address"],
)
def test_refused_redirect_hop_is_audited_with_both_hosts(
    api, api_key, owner, fakeweb, settings, target, code, hop_host
):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    url = fakeweb.redirect(f"https://images.example.com/r?sig={SECRET}", target)
    response = api.post(
        "/v1/chat", {"image_url": url, "prompt": "What is this?"}, content_type="application/json"
    )
    assert response.status_code in (400, 403), response.content
    assert response.json()["error"]["code"] == code

    (event,) = events("safety.url_refused")
    assert event.details["host"] == "images.example.com"
    assert event.details["redirect_host"] == hop_host
    trail = everything_audited()
    assert SECRET not in trail and "x.png" not in trail


def test_an_accepted_image_url_is_not_a_refusal(api, engine, fakeweb, settings):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    url = fakeweb.serve("https://images.example.com/a.png", PNG)
    response = api.post(
        "/v1/chat", {"image_url": url, "prompt": "hi"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert ("https", "images.example.com", "/a.png") in fakeweb.requests
    assert events("safety.url_refused") == []


# --- hostile uploads -------------------------------------------------------------------------

HOSTILE = [
    pytest.param(
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "svg_not_allowed", id="svg"
    ),
    pytest.param(b"<html><script>alert(1)</script></html>", "not_an_image", id="html"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "corrupt", id="png-garbage"),
]
FILE_NAME = "payroll-wang-fang.png"


@pytest.mark.parametrize(("data", "code"), HOSTILE)
def test_hostile_upload_on_the_chat_page_is_audited(owner_client, owner, media_root, data, code):
    response = owner_client.post(
        "/uploads/", {"image": SimpleUploadedFile(FILE_NAME, data, "image/png")}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    (event,) = events("safety.upload_refused")
    assert event.actor_id == owner.pk
    assert event.details == {"reason": code, "channel": "web"}
    trail = everything_audited()
    assert "payroll" not in trail and "script" not in trail and "svg+" not in trail
    assert not Upload.objects.exists()


@pytest.mark.parametrize(("data", "code"), HOSTILE)
def test_hostile_upload_on_the_api_is_audited(api, api_key, owner, media_root, data, code):
    response = api.post("/v1/uploads", {"image": SimpleUploadedFile(FILE_NAME, data, "image/png")})
    assert response.status_code in (400, 415), response.content
    assert response.json()["error"]["code"] == code
    (event,) = events("safety.upload_refused")
    assert event.actor_id == owner.pk
    assert (event.object_type, event.object_id) == ("apikey", str(api_key[0].pk))
    assert event.details == {"reason": code, "channel": "api", "key": api_key[0].prefix}
    trail = everything_audited()
    assert "payroll" not in trail and "script" not in trail
    assert not Upload.objects.exists()


@pytest.mark.parametrize(("data", "code"), HOSTILE)
def test_hostile_inline_image_on_the_chat_endpoint_is_audited(api, api_key, owner, data, code):
    """The image sent inside the question (raw base64 or a data URL), not uploaded first."""
    import base64
    import json

    for image in (
        base64.b64encode(data).decode(),
        "data:image/png;base64," + base64.b64encode(data).decode(),
    ):
        response = api.post(
            "/v1/chat",
            data=json.dumps({"image_url": image, "prompt": "What is on this screen?"}),
            content_type="application/json",
        )
        assert response.status_code in (400, 415), response.content
        assert response.json()["error"]["code"] == code
    refused = events("safety.upload_refused")
    assert len(refused) == 2
    assert all(
        e.details == {"reason": code, "channel": "api", "key": api_key[0].prefix} for e in refused
    )
    assert "script" not in everything_audited()
    assert not Upload.objects.exists()


def test_oversized_uploads_are_audited_too(owner_client, api, settings, media_root):
    settings.UPLOAD_MAX_BYTES = 10_000
    big = PNG + b"\0" * 200_000
    web = owner_client.post("/uploads/", {"image": SimpleUploadedFile(FILE_NAME, big)})
    assert web.status_code == 413
    through_api = api.post("/v1/uploads", {"image": SimpleUploadedFile(FILE_NAME, big)})
    assert through_api.status_code == 413
    assert [
        (e.details["reason"], e.details["channel"]) for e in events("safety.upload_refused")
    ] == [
        ("too_large", "web"),
        ("too_large", "api"),
    ]


def test_accepted_upload_and_a_missing_file_are_not_refusals(owner_client, media_root):
    ok = owner_client.post("/uploads/", {"image": SimpleUploadedFile("s.png", PNG, "image/png")})
    assert ok.status_code == 201, ok.content
    assert owner_client.post("/uploads/", {}).status_code == 400
    assert events("safety.upload_refused") == []
