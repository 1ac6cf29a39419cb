"""Authentication, request validation and Django's own errors on API paths: every error
in the one JSON shape. None of these reach the engine."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import api_key_revoke

from .conftest import QUESTION, assert_error, bearer

# Transactional: the async API views authenticate on a pool thread, with its own
# database connection, which must see the keys the test creates.
pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "/v1/chat"
COMPLETIONS = "/v1/chat/completions"


def post_json(client, path, body, **extra):
    return client.post(path, json.dumps(body), content_type="application/json", **extra)


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS, "/v1/models", "/v1/conversations"])
def test_missing_key_is_401_json(path):
    client = Client()
    response = client.post(path) if "chat" in path else client.get(path)
    error = assert_error(response, 401, "missing_api_key")
    assert error["type"] == "authentication_error"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_wrong_key_and_malformed_header_are_401():
    assert_error(
        Client().get("/v1/models", **bearer("glk_deadbeef_not-a-real-secret")),
        401,
        "invalid_api_key",
    )
    assert_error(Client().get("/v1/models", **bearer("nonsense")), 401, "invalid_api_key")
    assert_error(
        Client().get("/v1/models", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz"),
        401,
        "invalid_authorization_header",
    )


def test_revoked_key_is_401_and_says_so(owner, owner_key, api):
    key, raw = owner_key
    assert api.get("/v1/models").status_code == 200
    api_key_revoke(api_key=key, acting_user=owner)
    error = assert_error(api.get("/v1/models"), 401, "revoked_api_key")
    assert "revoked" in error["message"]


def test_key_use_is_recorded(owner_key, api):
    key, _ = owner_key
    assert key.last_used_at is None
    before = timezone.now()
    api.get("/v1/models")
    key.refresh_from_db()
    assert key.last_used_at >= before


@pytest.mark.parametrize("param", ["api_key", "key", "access_token"])
def test_key_in_query_string_is_refused_even_with_a_valid_header(owner_key, api, param):
    _, raw = owner_key
    error = assert_error(api.get(f"/v1/models?{param}={raw}"), 400, "api_key_in_query")
    assert "Authorization" in error["message"] and "revoke" in error["message"]
    # A key value under any parameter name is spotted too.
    assert_error(Client().get(f"/v1/models?x={raw}"), 400, "api_key_in_query")


def test_models_lists_the_configured_engine(api, settings):
    settings.INFERENCE_ENGINE = "lite"
    body = api.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["lite"]
    assert api.get("/v1/models/lite").json()["id"] == "lite"
    assert_error(api.get("/v1/models/gpt-4o"), 404, "model_not_found")
    settings.INFERENCE_ENGINE = "vlm"
    settings.MODEL_ID = "zai-org/GLM-4.6V-Flash"
    assert api.get("/v1/models").json()["data"][0]["id"] == "zai-org/GLM-4.6V-Flash"
    assert api.get("/v1/models/zai-org/GLM-4.6V-Flash").status_code == 200


def test_malformed_json_is_400(api):
    for path in (CHAT, COMPLETIONS):
        response = api.post(path, '{"prompt": "hi",', content_type="application/json")
        error = assert_error(response, 400, "invalid_json")
        assert "not valid JSON" in error["message"]
        assert_error(post_json(api, path, ["a", "list"]), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_content_type_is_415(api, content_type):
    for path in (CHAT, COMPLETIONS):
        response = api.post(path, "prompt=hi", content_type=content_type)
        error = assert_error(response, 415, "unsupported_media_type")
        assert content_type in error["message"]


def test_json_upload_to_the_multipart_endpoint_is_415(api):
    assert_error(post_json(api, "/v1/uploads", {"image": "x"}), 415, "unsupported_media_type")


def test_oversized_body_is_413_before_parsing(api, settings):
    settings.API_MAX_BODY_BYTES = 1024
    big = {"prompt": "x" * 2000}
    for path in (CHAT, COMPLETIONS, "/v1/uploads"):
        error = assert_error(post_json(api, path, big), 413, "request_too_large")
        assert "larger than" in error["message"]


def test_missing_and_invalid_fields_name_the_field(api):
    error = assert_error(post_json(api, CHAT, {"image_url": "x"}), 400, "invalid_request")
    assert error["message"].startswith("prompt:")
    error = assert_error(post_json(api, CHAT, {"prompt": "hi", "max_tokens": 0}), 400)
    assert error["message"].startswith("max_tokens:")
    error = assert_error(
        post_json(api, CHAT, {"prompt": "hi", "image_url": "x", "image_id": "y"}), 400
    )
    assert "image_id" in error["message"]
    error = assert_error(post_json(api, COMPLETIONS, {"model": "lite", "messages": []}), 400)
    assert error["message"].startswith("messages:")
    error = assert_error(
        post_json(
            api, COMPLETIONS, {"model": "lite", "messages": [{"role": "tool", "content": "x"}]}
        ),
        400,
    )
    assert error["message"].startswith("messages.0.role:")
    error = assert_error(
        post_json(
            api,
            COMPLETIONS,
            {"model": "lite", "messages": [{"role": "user", "content": "hi"}], "n": 2},
        ),
        400,
    )
    assert error["message"].startswith("n:")


def test_unknown_model_is_404(api, settings):
    settings.INFERENCE_ENGINE = "lite"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": QUESTION}]}
    error = assert_error(post_json(api, COMPLETIONS, body), 404, "model_not_found")
    assert "lite" in error["message"]


def test_unsupported_openai_features_are_refused_clearly(api, settings):
    settings.INFERENCE_ENGINE = "lite"
    base = {"model": "lite", "messages": [{"role": "user", "content": QUESTION}]}
    error = assert_error(
        post_json(api, COMPLETIONS, {**base, "tools": [{"type": "function"}]}), 400
    )
    assert error["message"] == "tools: This parameter is not supported."
    audio = {
        "model": "lite",
        "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
    }
    assert_error(post_json(api, COMPLETIONS, audio), 400, "unsupported_content")
    last_not_user = {
        "model": "lite",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
    }
    assert_error(post_json(api, COMPLETIONS, last_not_user), 400, "invalid_messages")


def test_django_errors_on_api_paths_are_json(api):
    # No such route (Django's resolver 404, normally an HTML page).
    error = assert_error(api.get("/v1/nothing-here"), 404, "unknown_endpoint")
    assert "/api/docs/" in error["message"]
    assert_error(Client().get("/api/nothing"), 404, "unknown_endpoint")
    # Wrong method: 405 with Allow kept.
    response = api.get(CHAT)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]
    assert_error(api.delete("/v1/models"), 405, "method_not_allowed")
    # Elsewhere the site keeps its HTML pages.
    assert Client().get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_missing_scope_is_403(owner):
    from accounts.services import api_key_create

    _, raw = api_key_create(user=owner, name="uploads only", scopes=["uploads"])
    client = Client(**bearer(raw))
    assert client.get("/v1/uploads").status_code == 200
    error = assert_error(client.get("/v1/conversations"), 403, "missing_scope")
    assert error["type"] == "permission_error"
    assert_error(post_json(client, CHAT, {"prompt": QUESTION}), 403, "missing_scope")


@pytest.mark.urls("tests.api.boom_urls")
def test_unhandled_exceptions_and_html_errors_on_api_paths_become_json(caplog):
    client = Client(raise_request_exception=False)
    response = client.get("/v1/boom")
    error = assert_error(response, 500, "internal_error")
    assert error["type"] == "api_error"
    assert "a bug in a view" not in error["message"]  # no internals leak out
    assert "a bug in a view" in caplog.text  # but the log has them
    assert_error(client.get("/v1/html-error"), 502, "http_502")
