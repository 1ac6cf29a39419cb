"""The production topology on one machine: daphne and a Celery worker as real processes,
PostgreSQL and Redis between them, a real websocket client in front."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from django.db import connection
from django.test import Client

from assistant import services
from assistant.models import Message

from .servers import base_env, running, start_celery_worker, start_daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def redis_url():
    import os

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def topology_env(tmp_path, redis_url, settings):
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    # The web side and the worker must see the same media folder (a shared volume in
    # production, docs/deploy.md).
    settings.MEDIA_ROOT = tmp_path / "media"
    return base_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        INFERENCE_MODE="celery",
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        DATA_DIR=str(tmp_path / "data"),
        # The test logs in with a session signed by this process's key.
        SECRET_KEY=settings.SECRET_KEY,
    )


async def ask_over_websocket(url: str, conversation_id: int, cookie: str, payload: dict) -> list:
    import websockets

    ws_url = url.replace("http://", "ws://") + f"/ws/conversations/{conversation_id}/"
    headers = {"Cookie": f"sessionid={cookie}", "Origin": url.replace("127.0.0.1", "localhost")}
    events = []
    async with websockets.connect(ws_url, additional_headers=headers, open_timeout=10) as socket:
        await socket.send(json.dumps(payload))
        while True:
            event = json.loads(await asyncio.wait_for(socket.recv(), timeout=120))
            events.append(event)
            if event["type"] in {"done", "error"}:
                return events


def test_answer_streams_from_a_celery_worker_through_redis(
    owner, orders_png, topology_env, tmp_path
):
    conversation = services.conversation_create(owner=owner)
    upload = services.upload_create(owner=owner, data=orders_png)
    client = Client()
    client.force_login(owner)
    cookie = client.cookies["sessionid"].value

    worker = start_celery_worker(topology_env, tmp_path)
    daphne, url = start_daphne(topology_env, tmp_path)
    with running(daphne, worker):
        events = asyncio.run(
            ask_over_websocket(
                url,
                conversation.pk,
                cookie,
                {
                    "type": "ask",
                    "text": "Which order is still pending?",
                    "upload_id": str(upload.pk),
                },
            )
        )
        worker_log = worker.log()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "done", (kinds, worker_log[-3000:])
    assert kinds.count("token") >= 2
    answer_id = events[0]["message_id"]
    assert "10232" in events[-1]["text"]
    answer = Message.objects.get(pk=answer_id)
    assert answer.status == "done" and answer.text == events[-1]["text"]
    # It really ran on the worker, taken from the inference queue.
    assert "inference.generate_answer" in worker_log
