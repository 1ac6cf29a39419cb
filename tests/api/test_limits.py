"""Rate limits, daily quotas and the concurrency cap: 429 with Retry-After, in the one
error shape; counters in the database by default and in Redis when REDIS_URL is set."""

from __future__ import annotations

import json
import os

import pytest
import redis
from django.test import Client

from api.models import ApiExchange, RateWindow
from assistant import services
from assistant.models import Conversation, Message

from .conftest import QUESTION, assert_error, bearer

pytestmark = pytest.mark.django_db


def post_chat(client, body):
    return client.post("/v1/chat", json.dumps(body), content_type="application/json")


def test_per_key_rate_limit_in_the_database(owner_key, api):
    key, _ = owner_key
    key.rate_limit_per_minute = 2
    key.save()
    assert api.get("/v1/models").status_code == 200
    assert api.get("/v1/models").status_code == 200
    response = api.get("/v1/models")
    error = assert_error(response, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert RateWindow.objects.filter(key__contains=f":key:{key.pk}:").get().count == 3


def test_per_user_rate_limit_spans_keys(owner, settings):
    from accounts.services import api_key_create

    settings.API_USER_RATE_PER_MINUTE = 3
    clients = [Client(**bearer(api_key_create(user=owner)[1])) for _ in range(2)]
    statuses = [clients[i % 2].get("/v1/models").status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_rate_limit_counts_in_redis_when_configured(owner_key, api, settings):
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url)
    for stale in client.scan_iter("glimpse:api:rate:*"):
        client.delete(stale)
    settings.REDIS_URL = url
    key, _ = owner_key
    key.rate_limit_per_minute = 1
    key.save()
    assert api.get("/v1/models").status_code == 200
    response = api.get("/v1/models")
    assert_error(response, 429, "rate_limit_exceeded")
    assert "Retry-After" in response
    assert not RateWindow.objects.exists()  # nothing counted in the database
    counted = [client.get(k) for k in client.scan_iter(f"glimpse:api:rate:key:{key.pk}:*")]
    assert counted == [b"2"]
    assert all(client.ttl(k) > 0 for k in client.scan_iter("glimpse:api:rate:*"))


@pytest.mark.django_db(transaction=True)
def test_daily_request_quota_is_429_until_midnight(owner, owner_key, api):
    key, _ = owner_key
    key.daily_request_quota = 2
    key.save()
    # Two answers already asked today through this key (the ledger the quota reads).
    ApiExchange.objects.bulk_create(
        [ApiExchange(user=owner, api_key=key, endpoint="chat", settled=True) for _ in range(2)]
    )
    response = post_chat(api, {"prompt": QUESTION})
    error = assert_error(response, 429, "daily_request_quota_exceeded")
    assert "00:00 UTC" in error["message"]
    assert 1 <= int(response["Retry-After"]) <= 86400
    assert not Conversation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_daily_token_quota_counts_answers_even_after_their_conversation_is_deleted(
    owner, owner_key, api, settings
):
    settings.API_USER_DAILY_TOKENS = 100
    key, _ = owner_key
    conversation = services.conversation_create(owner=owner)
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="done",
        prompt_tokens=70,
        completion_tokens=40,
    )
    ApiExchange.objects.create(user=owner, api_key=key, answer=answer, endpoint="chat")
    # Deleting the conversation through the API does not give the tokens back.
    assert api.delete(f"/v1/conversations/{conversation.pk}").status_code == 204
    exchange = ApiExchange.objects.get()
    assert exchange.answer is None and exchange.settled
    assert exchange.prompt_tokens + exchange.completion_tokens == 110
    response = post_chat(api, {"prompt": QUESTION})
    error = assert_error(response, 429, "daily_token_quota_exceeded")
    assert "your account" in error["message"]
    assert "Retry-After" in response


@pytest.mark.django_db(transaction=True)
def test_concurrency_cap_per_key_leaves_no_half_written_rows(owner, owner_key, api, orders_png):
    key, _ = owner_key
    key.max_concurrent_generations = 1
    key.save()
    busy = services.conversation_create(owner=owner)
    running = Message.objects.create(conversation=busy, role="assistant", status="streaming")
    ApiExchange.objects.create(user=owner, api_key=key, answer=running, endpoint="chat")
    uploads_before = set(owner.uploads.values_list("pk", flat=True))

    from .conftest import data_url

    response = post_chat(api, {"prompt": QUESTION, "image_url": data_url(orders_png)})
    error = assert_error(response, 429, "too_many_concurrent_requests")
    assert "at most 1" in error["message"]
    assert int(response["Retry-After"]) >= 1
    # The conversation and the image made for the refused request are gone again.
    assert list(Conversation.objects.values_list("pk", flat=True)) == [busy.pk]
    assert set(owner.uploads.values_list("pk", flat=True)) == uploads_before
    assert ApiExchange.objects.count() == 1
