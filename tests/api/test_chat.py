"""POST /v1/chat and /v1/chat/completions in-process, through the real ASGI application,
the embedded engine and the lite model (OCR + SmolLM2): base64, data URL, https URL
(a pretend internet at the socket edge), uploads by id, multi-turn, and the official
openai SDK."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import openai
import pytest
from channels.db import database_sync_to_async

from api.models import ApiConversation, ApiExchange
from assistant.models import Conversation, Message
from audit.models import AuditEvent
from tests.fakeweb import fakeweb  # noqa: F401  (fixture)

from .conftest import QUESTION, data_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@database_sync_to_async
def stored(message_id):
    return Message.objects.select_related("conversation").get(pk=message_id)


@database_sync_to_async
def db(func, *args, **kwargs):
    return func(*args, **kwargs)


def assert_answered(body: dict) -> None:
    assert "10232" in body["response"], body
    assert body["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert isinstance(body["boxes"], list)


async def test_chat_with_raw_base64_then_continue_with_the_stored_image(
    asgi_http, owner_key, outsider_key, orders_png
):
    response = await asgi_http.post(
        "/v1/chat",
        json={"image_url": base64.b64encode(orders_png).decode(), "prompt": QUESTION},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_answered(body)
    answer = await stored(body["message_id"])
    assert answer.status == "done" and answer.text == body["response"]
    assert answer.conversation_id == body["conversation_id"]
    question = await stored(answer.reply_to_id)
    assert str(question.upload_id) == body["image_id"]
    # Marked as the API's, entered in the ledger with its tokens, audited like the chat page.
    exchange = await db(ApiExchange.objects.get, answer=answer)
    assert exchange.settled and exchange.api_key_id == owner_key[0].pk
    assert exchange.completion_tokens == body["usage"]["completion_tokens"]
    assert await db(ApiConversation.objects.filter(conversation_id=answer.conversation_id).exists)
    assert await db(
        AuditEvent.objects.filter(action="message.ask", object_id=str(question.pk)).exists
    )

    # Multi-turn: continue the conversation, naming the stored image by its id.
    reference = f"glimpse://uploads/{body['image_id']}"
    second = await asgi_http.post(
        "/v1/chat",
        json={
            "conversation_id": body["conversation_id"],
            "image_id": body["image_id"],
            "prompt": QUESTION,
            "max_tokens": 48,
        },
    )
    assert second.status_code == 200, second.text
    assert second.json()["conversation_id"] == body["conversation_id"]
    assert second.json()["image_id"] == body["image_id"]
    assert "10232" in second.json()["response"]
    messages = await db(
        lambda: list(
            Message.objects.filter(conversation_id=body["conversation_id"]).values_list(
                "role", "status"
            )
        )
    )
    assert messages == [("user", "done"), ("assistant", "done")] * 2

    # Someone else can use neither the image nor the conversation.
    other = {"Authorization": f"Bearer {outsider_key[1]}"}
    theirs = await asgi_http.post(
        "/v1/chat", json={"image_url": reference, "prompt": QUESTION}, headers=other
    )
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "upload_not_found"
    theirs = await asgi_http.post(
        "/v1/chat",
        json={"conversation_id": body["conversation_id"], "prompt": QUESTION},
        headers=other,
    )
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "conversation_not_found"


async def test_chat_with_an_https_url_and_key_domain_allowlist(
    asgi_http,
    owner_key,
    orders_png,
    fakeweb,  # noqa: F811  (the fixture imported above)
    settings,
):
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com", ".example.org"]
    url = fakeweb.serve("https://images.example.com/orders.png", orders_png)
    # /v1/chat through the official SDK's generic request method, unchanged.
    client = sdk(asgi_http)
    body = await client.post(
        "/chat", cast_to=dict, body={"image_url": url, "prompt": QUESTION, "max_tokens": 64}
    )
    assert_answered(body)
    assert ("https", "images.example.com", "/orders.png") in fakeweb.requests

    # A domain the server does not allow: refused before any connection.
    other = fakeweb.serve("https://elsewhere.example.com/a.png", orders_png)
    with pytest.raises(openai.PermissionDeniedError) as excinfo:
        await client.post("/chat", cast_to=dict, body={"image_url": other, "prompt": QUESTION})
    assert excinfo.value.body["code"] == "domain_not_allowed"
    assert not any(host == "elsewhere.example.com" for _, host, _ in fakeweb.requests)

    # The key narrows the server's policy: only cdn.example.org (which the server allows
    # through ".example.org") and evil.example.net (which it does not) for this key.
    key = owner_key[0]
    key.allowed_image_domains = ["cdn.example.org", "evil.example.net"]
    await db(key.save)
    narrowed = await asgi_http.post("/v1/chat", json={"image_url": url, "prompt": QUESTION})
    assert narrowed.json()["error"]["code"] == "domain_not_allowed"
    # A key cannot widen the policy.
    evil = fakeweb.serve("https://evil.example.net/a.png", orders_png)
    widened = await asgi_http.post("/v1/chat", json={"image_url": evil, "prompt": QUESTION})
    assert widened.json()["error"]["code"] == "domain_not_allowed"
    assert not any(host == "evil.example.net" for _, host, _ in fakeweb.requests)
    # An allowed host that fails is the fetcher's clear error, not a 500.
    missing = "https://cdn.example.org/missing.png"
    fakeweb.serve(missing, b"gone", status=404)
    failed = await asgi_http.post("/v1/chat", json={"image_url": missing, "prompt": QUESTION})
    assert failed.status_code == 422 and failed.json()["error"]["code"] == "upstream_status"
    # Refused requests leave nothing behind.
    conversations = await db(Conversation.objects.count)
    assert conversations == 1


async def test_bad_images_are_clear_errors(asgi_http):
    cases = {
        "data:text/plain;base64,aGk=": (400, "invalid_data_url"),
        "data:image/png,rawbytes": (400, "invalid_data_url"),
        "data:image/png;base64,!!!": (400, "invalid_base64"),
        "not base64 at all ###": (400, "invalid_base64"),
        "ftp://example.com/a.png": (400, "invalid_image_url"),
        base64.b64encode(b"GIF89a not really").decode(): (400, None),
        "glimpse://uploads/00000000-0000-0000-0000-000000000000": (404, "upload_not_found"),
    }
    for image_url, (status, code) in cases.items():
        response = await asgi_http.post("/v1/chat", json={"image_url": image_url, "prompt": "hi"})
        assert response.status_code == status, (image_url, response.text)
        error = response.json()["error"]
        assert set(error) == {"type", "message", "code"}
        if code:
            assert error["code"] == code, (image_url, error)
    assert await db(Conversation.objects.count) == 0


def sdk(asgi_http) -> openai.AsyncOpenAI:
    """The official SDK, unchanged, talking to the ASGI app through httpx."""
    return openai.AsyncOpenAI(
        api_key=asgi_http.headers["Authorization"].removeprefix("Bearer "),
        base_url="http://testserver/v1",
        http_client=httpx.AsyncClient(
            transport=asgi_http._transport, base_url="http://testserver", timeout=120
        ),
        max_retries=0,
    )


async def test_openai_sdk_completion_with_image_and_multi_turn(asgi_http, orders_png, owner):
    client = sdk(asgi_http)
    models = await client.models.list()
    assert [m.id for m in models.data] == ["lite"]

    completion = await client.chat.completions.create(
        model="lite",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": QUESTION},
                    {"type": "image_url", "image_url": {"url": data_url(orders_png)}},
                ],
            }
        ],
        max_tokens=64,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert "10232" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.total_tokens > 0
    assert completion.id == f"chatcmpl-{completion.model_extra['glimpse']['message_id']}"

    # Multi-turn: the client resends the history; the image sits in the first turn.
    follow_up = await client.chat.completions.create(
        model="lite",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look at this screen."},
                    {"type": "image_url", "image_url": {"url": data_url(orders_png)}},
                ],
            },
            {"role": "assistant", "content": "I see an order list."},
            {"role": "user", "content": QUESTION},
        ],
        max_completion_tokens=64,
    )
    assert "10232" in follow_up.choices[0].message.content
    conversation_id = follow_up.model_extra["glimpse"]["conversation_id"]
    history = await db(
        lambda: list(
            Message.objects.filter(conversation_id=conversation_id).values(
                "role", "text", "engine", "upload_id", "status"
            )
        )
    )
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["text"] == "Answer briefly.\n\nLook at this screen."
    assert history[0]["upload_id"] is not None and history[2]["upload_id"] is None
    assert history[1]["engine"] == "client"  # written by the API client, not generated
    assert history[3]["status"] == "done" and history[3]["engine"] == "lite"
    assert await db(ApiConversation.objects.filter(conversation_id=conversation_id).exists)
    assert await db(
        AuditEvent.objects.filter(action="conversation.seed", object_id=str(conversation_id)).exists
    )

    with pytest.raises(openai.NotFoundError) as excinfo:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert excinfo.value.body["code"] == "model_not_found"
    bad = openai.AsyncOpenAI(
        api_key="glk_00000000_wrong",
        base_url="http://testserver/v1",
        http_client=httpx.AsyncClient(transport=asgi_http._transport),
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError) as excinfo:
        await bad.models.list()
    assert excinfo.value.body["code"] == "invalid_api_key"


async def test_an_answer_that_takes_too_long_is_stopped_with_504(asgi_http, orders_png, settings):
    settings.API_ANSWER_TIMEOUT = 0.3
    response = await asgi_http.post(
        "/v1/chat", json={"image_url": data_url(orders_png), "prompt": QUESTION}
    )
    assert response.status_code == 504, response.text
    assert response.json()["error"] == {
        "type": "timeout_error",
        "message": "No answer within 0.3 seconds; the request was stopped.",
        "code": "generation_timeout",
    }
    answer = await db(lambda: Message.objects.get(role="assistant"))
    for _ in range(600):
        if answer.is_final:
            break
        await asyncio.sleep(0.1)
        answer = await stored(answer.pk)
    assert answer.status == "aborted"


def _sse(text: str) -> list[tuple[str | None, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, "\n".join(data)))
    return events


async def test_a_cached_answer_is_stored_like_any_other_and_streams(
    asgi_http, owner_key, orders_png, settings
):
    settings.ANSWER_CACHE = "user"
    upload = await asgi_http.post(
        "/v1/chat", json={"image_url": data_url(orders_png), "prompt": QUESTION}
    )
    assert upload.status_code == 200, upload.text
    first = upload.json()
    assert "(cached)" not in (await stored(first["message_id"])).engine
    reference = f"glimpse://uploads/{first['image_id']}"

    # The same question about the same screenshot: answered from the cache, and stored as
    # a conversation of its own, with its question, answer, ledger row and audit records.
    again = await asgi_http.post("/v1/chat", json={"image_url": reference, "prompt": QUESTION})
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["response"] == first["response"]
    assert body["conversation_id"] != first["conversation_id"]
    assert body["usage"] == first["usage"]
    answer = await stored(body["message_id"])
    assert answer.status == "done" and answer.engine.endswith("(cached)")
    assert answer.conversation.title == QUESTION
    question = await stored(answer.reply_to_id)
    assert question.text == QUESTION and str(question.upload_id) == first["image_id"]
    exchange = await db(ApiExchange.objects.get, answer=answer)
    assert exchange.settled and exchange.completion_tokens == body["usage"]["completion_tokens"]
    assert await db(ApiConversation.objects.filter(conversation_id=answer.conversation_id).exists)

    def audited(action, object_type, object_id):
        return AuditEvent.objects.get(
            action=action, object_type=object_type, object_id=str(object_id)
        ).details

    assert await db(audited, "conversation.create", "conversation", answer.conversation_id) == {}
    assert (await db(audited, "message.ask", "message", question.pk))["answer"] == answer.pk
    assert (await db(audited, "message.answer", "message", answer.pk))["cached"] is True

    # Streamed, a cached answer arrives as the same events as a generated one.
    streamed = await asgi_http.post(
        "/v1/chat", json={"image_url": reference, "prompt": QUESTION, "stream": True}
    )
    assert streamed.status_code == 200, streamed.text
    events = _sse(streamed.text)
    names = [name for name, _ in events]
    assert names[0] == "accepted" and names[-1] == "done", names
    assert (
        "".join(json.loads(data)["text"] for name, data in events if name == "token")
        == (first["response"])
    )
    done = json.loads(events[-1][1])
    assert done["response"] == first["response"] and done["usage"] == first["usage"]

    # And through the OpenAI-compatible endpoint, streamed too.
    completion = await asgi_http.post(
        "/v1/chat/completions",
        json={
            "model": "lite",
            "stream": True,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": QUESTION},
                        {"type": "image_url", "image_url": {"url": reference}},
                    ],
                }
            ],
        },
    )
    assert completion.status_code == 200, completion.text
    data = [data for _, data in _sse(completion.text)]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (first["response"])
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
