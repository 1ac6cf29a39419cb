"""What OpenAI-style clients send, unchanged, through the real ASGI application, the
embedded engine and the lite model: explicit nulls, large max_tokens, stop sequences and
sampling settings, https and raw base64 image parts, bodies without Content-Length,
oversized images, bad keys through the official SDK, and the daily quotas."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest
from channels.db import database_sync_to_async

from accounts.services import api_key_create, api_key_revoke
from api.models import ApiExchange
from assistant.models import Conversation, Message, Upload
from tests.fakeweb import fakeweb  # noqa: F401  (fixture)

from .conftest import QUESTION, data_url
from .test_chat import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ERROR_FIELDS = {"type", "message", "code"}


@database_sync_to_async
def db(func, *args, **kwargs):
    return func(*args, **kwargs)


def image_parts(url: str, text: str = QUESTION) -> list[dict]:
    return [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]


def assert_json_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS, body
    assert body["error"]["code"] == code, body
    return body["error"]


def sdk_for(asgi_http, raw_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=raw_key,
        base_url="http://testserver/v1",
        http_client=httpx.AsyncClient(transport=asgi_http._transport, timeout=120),
        max_retries=0,
    )


# --- explicit nulls and max_tokens -----------------------------------------------------------


async def test_explicit_nulls_count_as_not_given(asgi_http):
    # The SDK sends a parameter passed as None as JSON null, as many clients do.
    client = sdk(asgi_http)
    completion = await client.chat.completions.create(
        model="lite",
        messages=[
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": None},  # OpenAI allows this for assistant turns
            {"role": "user", "content": "What can you do?"},
        ],
        temperature=None,
        top_p=None,
        stop=None,
        n=None,
        max_tokens=None,
        max_completion_tokens=None,
        stream=None,
        stream_options=None,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content
    conversation_id = completion.model_extra["glimpse"]["conversation_id"]
    history = await db(
        lambda: list(
            Message.objects.filter(conversation_id=conversation_id).values_list("role", "text")
        )
    )
    assert [role for role, _ in history] == ["user", "assistant", "user", "assistant"]
    assert history[1][1] == ""  # the null assistant turn, stored empty

    # Plain HTTP with every optional field null, on both endpoints.
    nulls = {
        "temperature": None,
        "top_p": None,
        "stop": None,
        "stream": None,
        "max_tokens": None,
    }
    response = await asgi_http.post(
        "/v1/chat/completions",
        json={
            "model": "lite",
            "messages": [{"role": "user", "content": "Hello", "name": None}],
            "n": None,
            "max_completion_tokens": None,
            "stream_options": None,
            "response_format": None,
            "tools": None,
            "logprobs": None,
            **nulls,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"  # stream: null is not a stream
    response = await asgi_http.post(
        "/v1/chat",
        json={
            "prompt": "Hello",
            "image_url": None,
            "image_id": None,
            "conversation_id": None,
            **nulls,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["response"]

    # Required fields, and content of a user turn, still refuse null.
    for body, field in [
        ({"model": None, "messages": [{"role": "user", "content": "hi"}]}, "model:"),
        ({"model": "lite", "messages": [{"role": "user", "content": None}]}, "messages.0.content:"),
    ]:
        error = assert_json_error(
            await asgi_http.post("/v1/chat/completions", json=body), 400, "invalid_request"
        )
        assert error["message"].startswith(field), error
    error = assert_json_error(
        await asgi_http.post("/v1/chat", json={"prompt": None}), 400, "invalid_request"
    )
    assert error["message"].startswith("prompt:")


async def test_max_tokens_above_the_limit_is_lowered_not_refused(asgi_http):
    client = sdk(asgi_http)
    # What clients commonly default to.
    for params in ({"max_tokens": 8192}, {"max_completion_tokens": 16384}):
        completion = await client.chat.completions.create(
            model="lite", messages=[{"role": "user", "content": "Hello"}], **params
        )
        assert completion.choices[0].message.content
    response = await asgi_http.post("/v1/chat", json={"prompt": "Hello", "max_tokens": 10**6})
    assert response.status_code == 200, response.text
    # Zero and negative stay errors, naming the field.
    for value in (0, -5):
        error = assert_json_error(
            await asgi_http.post("/v1/chat", json={"prompt": "Hello", "max_tokens": value}),
            400,
            "invalid_request",
        )
        assert error["message"].startswith("max_tokens:")
        with pytest.raises(openai.BadRequestError) as excinfo:
            await client.chat.completions.create(
                model="lite",
                messages=[{"role": "user", "content": "Hello"}],
                max_completion_tokens=value,
            )
        assert excinfo.value.body["message"].startswith("max_completion_tokens:")


# --- stop and sampling -------------------------------------------------------------------------


async def test_stop_cuts_the_answer_and_sampling_is_accepted(asgi_http, orders_png):
    image = data_url(orders_png)
    full = await asgi_http.post(
        "/v1/chat", json={"image_url": image, "prompt": QUESTION, "max_tokens": 64}
    )
    assert full.status_code == 200, full.text
    text = full.json()["response"]
    assert "10232" in text, text
    expected = text[: text.index("10232")]

    # /v1/chat: the answer ends right before the stop sequence.
    cut = await asgi_http.post(
        "/v1/chat",
        json={
            "image_url": image,
            "prompt": QUESTION,
            "max_tokens": 64,
            "stop": ["10232", "never appears"],
            "temperature": 0.7,
            "top_p": 0.9,
        },
    )
    assert cut.status_code == 200, cut.text
    body = cut.json()
    assert body["response"] == expected, (body["response"], text)
    assert body["finish_reason"] == "stop"
    stored = await db(Message.objects.get, pk=body["message_id"])
    assert stored.text == expected

    # /v1/chat/completions through the SDK, not streamed and streamed.
    client = sdk(asgi_http)
    completion = await client.chat.completions.create(
        model="lite",
        messages=[{"role": "user", "content": image_parts(image)}],
        max_tokens=64,
        stop="10232",
        temperature=1.3,
        top_p=0.5,
    )
    assert completion.choices[0].message.content == expected
    assert completion.choices[0].finish_reason == "stop"
    stream = await client.chat.completions.create(
        model="lite",
        messages=[{"role": "user", "content": image_parts(image)}],
        max_tokens=64,
        stop=["10232"],
        temperature=0.2,
        top_p=0.95,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"

    # Out of range sampling values are refused, naming the field.
    for field, value in (("temperature", 2.5), ("top_p", 1.5), ("stop", ["a"] * 5)):
        error = assert_json_error(
            await asgi_http.post("/v1/chat", json={"prompt": QUESTION, field: value}),
            400,
            "invalid_request",
        )
        assert error["message"].startswith(f"{field}:")


# --- images in completion parts -----------------------------------------------------------------


async def test_completion_image_parts_take_https_urls_and_raw_base64(
    asgi_http,
    orders_png,
    fakeweb,  # noqa: F811  (the fixture imported above)
    settings,
):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    url = fakeweb.serve("https://images.example.com/orders.png", orders_png)
    client = sdk(asgi_http)
    for reference in (url, base64.b64encode(orders_png).decode()):
        completion = await client.chat.completions.create(
            model="lite",
            messages=[{"role": "user", "content": image_parts(reference)}],
            max_tokens=64,
        )
        assert "10232" in completion.choices[0].message.content, reference[:40]
        answer = await db(
            Message.objects.select_related("reply_to__upload").get,
            pk=completion.model_extra["glimpse"]["message_id"],
        )
        upload = answer.reply_to.upload
        assert upload is not None and upload.width > 0
    assert ("https", "images.example.com", "/orders.png") in fakeweb.requests

    # A failed fetch is the fetcher's 422, in the one shape, through the SDK.
    fakeweb.serve("https://images.example.com/gone.png", b"gone", status=404)
    with pytest.raises(openai.UnprocessableEntityError) as excinfo:
        await client.chat.completions.create(
            model="lite",
            messages=[
                {"role": "user", "content": image_parts("https://images.example.com/gone.png")}
            ],
        )
    assert excinfo.value.body["code"] == "upstream_status"
    assert set(excinfo.value.response.json()["error"]) == ERROR_FIELDS


# --- sizes ----------------------------------------------------------------------------------------


async def test_base64_image_over_upload_max_bytes_is_413(asgi_http, orders_png, settings):
    settings.UPLOAD_MAX_BYTES = len(orders_png) - 1
    for reference in (base64.b64encode(orders_png).decode(), data_url(orders_png)):
        response = await asgi_http.post(
            "/v1/chat", json={"image_url": reference, "prompt": QUESTION}
        )
        error = assert_json_error(response, 413, "too_large")
        assert error["type"] == "invalid_request_error"
        response = await asgi_http.post(
            "/v1/chat/completions",
            json={
                "model": "lite",
                "messages": [{"role": "user", "content": image_parts(reference)}],
            },
        )
        assert_json_error(response, 413, "too_large")
    assert await db(Conversation.objects.count) == 0
    assert await db(Upload.objects.count) == 0

    # An image of exactly the limit is taken, even when its base64 ends in padding.
    padded = orders_png + b"\0" * ((1 - len(orders_png)) % 3)  # PNG readers stop at IEND
    assert len(padded) % 3 == 1 and base64.b64encode(padded).endswith(b"==")
    settings.UPLOAD_MAX_BYTES = len(padded)
    response = await asgi_http.post(
        "/v1/chat",
        json={"image_url": base64.b64encode(padded).decode(), "prompt": QUESTION, "max_tokens": 8},
    )
    assert response.status_code == 200, response.text


async def chunks_of(data: bytes, size: int = 4096):
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_chunked_bodies_are_read_and_held_to_the_size_limit(asgi_http, settings):
    import json

    small = json.dumps({"model": "lite", "messages": [{"role": "user", "content": "Hello"}]})
    # An async iterator of bytes: httpx sends it with Transfer-Encoding: chunked and no
    # Content-Length.
    response = await asgi_http.post(
        "/v1/chat/completions",
        content=chunks_of(small.encode()),
        headers={"Content-Type": "application/json"},
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]

    settings.API_MAX_BODY_BYTES = 64 * 1024
    big = json.dumps({"prompt": "x" * (100 * 1024)}).encode()
    for path in ("/v1/chat", "/v1/chat/completions"):
        response = await asgi_http.post(
            path, content=chunks_of(big), headers={"Content-Type": "application/json"}
        )
        error = assert_json_error(response, 413, "request_too_large")
        assert "larger than" in error["message"]
    # An empty chunked body is a missing field, as with Content-Length: 0.
    response = await asgi_http.post(
        "/v1/chat", content=chunks_of(b""), headers={"Content-Type": "application/json"}
    )
    error = assert_json_error(response, 400, "invalid_request")
    assert error["message"].startswith("prompt:")
    assert await db(Conversation.objects.count) == 1


# --- keys through the SDK -------------------------------------------------------------------------


async def test_wrong_and_revoked_keys_are_authentication_errors_in_the_sdk(
    asgi_http, owner, orders_png
):
    api_key, raw = await db(api_key_create, user=owner, name="to revoke")
    good = sdk_for(asgi_http, raw)
    messages = [{"role": "user", "content": image_parts(data_url(orders_png))}]
    assert (await good.models.list()).data
    await db(api_key_revoke, api_key=api_key, acting_user=owner)
    cases = [
        (good, "revoked_api_key"),
        (sdk_for(asgi_http, "glk_00000000_wrong"), "invalid_api_key"),
        (sdk_for(asgi_http, "not-even-the-format"), "invalid_api_key"),
    ]
    for client, code in cases:
        for stream in (False, True):
            with pytest.raises(openai.AuthenticationError) as excinfo:
                await client.chat.completions.create(model="lite", messages=messages, stream=stream)
            error = excinfo.value
            assert error.status_code == 401
            assert error.body["code"] == code, (stream, error.body)
            assert error.body["type"] == "authentication_error"
            assert error.response.json() == {"error": error.body}
            assert set(error.body) == ERROR_FIELDS
            assert error.response.headers["www-authenticate"].startswith("Bearer")
    # Nothing was asked, stored or counted.
    assert await db(Conversation.objects.count) == 0
    assert await db(ApiExchange.objects.count) == 0


# --- daily quotas, end to end ------------------------------------------------------------------


async def test_daily_request_quota_per_user_spans_keys(asgi_http, owner, settings):
    settings.API_USER_DAILY_REQUESTS = 1
    first = await asgi_http.post("/v1/chat", json={"prompt": "Hello", "max_tokens": 8})
    assert first.status_code == 200, first.text
    # Another key of the same user: the account's quota is used up.
    _, other = await db(api_key_create, user=owner, name="second")
    refused = await asgi_http.post(
        "/v1/chat",
        json={"prompt": "Hello", "max_tokens": 8},
        headers={"Authorization": f"Bearer {other}"},
    )
    error = assert_json_error(refused, 429, "daily_request_quota_exceeded")
    assert error["type"] == "rate_limit_error" and "your account" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86400
    with pytest.raises(openai.RateLimitError) as excinfo:
        await sdk_for(asgi_http, other).chat.completions.create(
            model="lite", messages=[{"role": "user", "content": "Hello"}]
        )
    assert excinfo.value.body["code"] == "daily_request_quota_exceeded"
    assert int(excinfo.value.response.headers["retry-after"]) >= 1
    assert await db(ApiExchange.objects.count) == 1


async def test_daily_token_quota_per_key(asgi_http, owner, owner_key, settings):
    settings.API_KEY_DAILY_TOKENS = 5
    first = await asgi_http.post("/v1/chat", json={"prompt": "Hello", "max_tokens": 16})
    assert first.status_code == 200, first.text
    assert first.json()["usage"]["total_tokens"] >= 5
    # The answer's tokens used up this key's quota: refused, until midnight UTC.
    refused = await asgi_http.post("/v1/chat", json={"prompt": "Hello again"})
    error = assert_json_error(refused, 429, "daily_token_quota_exceeded")
    assert "this API key" in error["message"] and "00:00 UTC" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86400
    with pytest.raises(openai.RateLimitError) as excinfo:
        await sdk(asgi_http).chat.completions.create(
            model="lite", messages=[{"role": "user", "content": "Hello"}], stream=True
        )
    assert excinfo.value.body["code"] == "daily_token_quota_exceeded"
    # Another key of the same user has its own token quota.
    _, other = await db(api_key_create, user=owner, name="fresh")
    fresh = await asgi_http.post(
        "/v1/chat",
        json={"prompt": "Hello", "max_tokens": 8},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert fresh.status_code == 200, fresh.text
