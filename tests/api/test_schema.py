"""The OpenAPI document is generated from the code, valid, complete; its docs page works
offline; the partner notebook parses and only uses endpoints that exist."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from openapi_spec_validator import validate

from inference.types import MAX_NEW_TOKENS_LIMIT

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
API_PREFIXES = ("v1/", "api/")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def api_routes() -> list[tuple[str, set[str]]]:
    """(OpenAPI path, HTTP methods) of every URL pattern under /v1/ and /api/."""
    found = []

    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if route.startswith(API_PREFIXES):
                    view = pattern.callback.cls
                    methods = {
                        m for m in view.http_method_names if m not in ("options", "head")
                    } & {m for m in dir(view)}
                    found.append(("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route), methods))

    walk(get_resolver().url_patterns, "")
    return found


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises on any violation of the OpenAPI 3 specification


def test_every_api_route_and_method_is_documented(schema):
    routes = api_routes()
    assert len(routes) >= 12
    for path, methods in routes:
        assert path in schema["paths"], f"{path} is missing from the schema"
        assert methods, path
        assert methods <= set(schema["paths"][path]), (path, methods, set(schema["paths"][path]))


def test_schema_documents_auth_errors_and_streaming(schema):
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "glk_<prefix>_<secret>",
        "description": "An API key from /accounts/keys/, as `Authorization: Bearer <key>`.",
    }
    chat = schema["paths"]["/v1/chat"]["post"]
    assert chat["security"] == [{"apiKey": []}]
    assert {"application/json", "text/event-stream"} <= set(chat["responses"]["200"]["content"])
    for status in ("400", "401", "413", "415", "429", "503"):
        ref = chat["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
    completions = schema["paths"]["/v1/chat/completions"]["post"]
    body = completions["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]
    assert {"model", "messages", "max_tokens", "stream", "stream_options", "stop"} <= set(fields)


def test_chat_endpoints_document_fetch_failures_server_errors_and_nullable_fields(schema):
    for path in ("/v1/chat", "/v1/chat/completions"):
        responses = schema["paths"][path]["post"]["responses"]
        for status in ("422", "500"):
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (path, status)
        assert "image URL" in responses["422"]["description"]
    components = schema["components"]["schemas"]
    completion = components["ChatCompletionCreateRequest"]["properties"]
    # Null means "not given" for every optional parameter; max_tokens is clamped, not capped.
    for name in ("temperature", "top_p", "stop", "stream", "n", "max_tokens", "stream_options"):
        assert completion[name].get("nullable") is True, name
    for name in ("max_tokens", "max_completion_tokens"):
        assert completion[name]["minimum"] == 1 and "maximum" not in completion[name]
        assert str(MAX_NEW_TOKENS_LIMIT) in completion[name]["description"]
    message = components["CompletionMessageRequest"]
    assert message["required"] == ["role"]
    assert message["properties"]["content"]["nullable"] is True
    assert "description" not in message  # the null-handling mixin adds no description
    chat = components["ChatAskRequest"]["properties"]
    assert all(chat[name].get("nullable") for name in ("image_url", "image_id", "stop"))
    assert "nullable" not in chat["prompt"]


def test_docs_page_works_offline():
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    # Every script and stylesheet is served by this server, none from a CDN.
    scripts = [a for a in assets if a.endswith((".js", ".css"))]
    assert scripts and all(a.startswith("/static/") for a in scripts), assets
    assert "/api/schema/" in html
    for asset in scripts:
        response = Client().get(asset)
        assert response.status_code == 200, asset
        assert len(b"".join(response.streaming_content)) > 1000


def resolves(path: str, placeholder: str) -> bool:
    try:
        match = resolve(re.sub(r"\{[^}]+\}", placeholder, path.split("?")[0]))
    except Resolver404:
        return False
    return match.route.startswith("v1/")


def test_partner_notebook_parses_and_uses_real_endpoints():
    notebooks = list((REPO / "examples").glob("*.ipynb"))
    assert notebooks
    for notebook_path in notebooks:
        notebook = json.loads(notebook_path.read_text())
        assert notebook["nbformat"] == 4
        code = [
            "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"
        ]
        assert len(code) >= 5
        for source in code:
            compile(source.replace("!pip", "# pip"), str(notebook_path), "exec")
        # f-string fields ({answer['id']}) become a placeholder first.
        flat = re.sub(r"\{[^{}]*\}", "{x}", "\n".join(code))
        paths = set(re.findall(r"[\"'](/v1/[\w/{}.-]*)", flat))
        assert {"/v1/chat", "/v1/uploads"} <= paths, paths
        for path in paths:
            assert any(resolves(path, value) for value in ("1", str(uuid.uuid4()))), path
