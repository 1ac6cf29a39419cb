"""Events that many runner threads publish reach the channel layer complete, in each
answer's order, and in batches (inference/events.py, glimpse/channel_layer.py), on a real
Redis."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
import redis
from channels.layers import get_channel_layer

from inference import events

THREADS = 16
EVENTS_EACH = 40


@pytest.fixture
def redis_layer(settings):
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    redis.Redis.from_url(url).flushdb()
    settings.CHANNEL_LAYERS = {  # channels resets its layers when this setting changes
        "default": {
            "BACKEND": "glimpse.channel_layer.StreamingRedisChannelLayer",
            "CONFIG": {"hosts": [url], "capacity": 100_000, "expiry": 60},
        }
    }
    events._publisher_instance = None  # a publisher for this layer
    yield get_channel_layer()
    events._publisher_instance = None


def listen(layer, groups: list[str]):
    loop = asyncio.new_event_loop()

    async def join() -> str:
        channel = await layer.new_channel()
        for group in groups:
            await layer.group_add(group, channel)
        return channel

    return loop, loop.run_until_complete(join())


def receive(layer, loop, channel, count: int) -> list[dict]:
    async def take() -> list[dict]:
        return [(await layer.receive(channel))["event"] for _ in range(count)]

    try:
        return loop.run_until_complete(asyncio.wait_for(take(), timeout=30))
    finally:
        loop.close()


def test_many_threads_publish_complete_in_order_and_in_batches(redis_layer):
    groups = [f"conversation.{i}" for i in range(4)]
    loop, channel = listen(redis_layer, groups)
    start = threading.Barrier(THREADS)
    failures = []

    def answer(thread: int) -> None:
        start.wait()
        for n in range(EVENTS_EACH):
            event = {"type": "token", "thread": thread, "seq": n}
            if not events.publish(groups[thread % len(groups)], event):
                failures.append((thread, n))

    threads = [threading.Thread(target=answer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []

    received = receive(redis_layer, loop, channel, THREADS * EVENTS_EACH)
    for thread in range(THREADS):
        assert [e["seq"] for e in received if e["thread"] == thread] == list(range(EVENTS_EACH))
    publisher = events._publisher()
    assert publisher.events_sent == THREADS * EVENTS_EACH
    # Threads that publish at the same time share batches (two round trips each).
    assert publisher.batches_sent < publisher.events_sent


def test_events_queued_without_waiting_keep_their_order(redis_layer):
    loop, channel = listen(redis_layer, ["conversation.7"])
    for n in range(300):
        assert events.publish("conversation.7", {"type": "token", "seq": n}, wait=False)
    received = receive(redis_layer, loop, channel, 300)
    assert [e["seq"] for e in received] == list(range(300))


def test_a_group_nobody_listens_to_costs_nothing_and_blocks_nothing(redis_layer):
    loop, channel = listen(redis_layer, ["conversation.1"])
    assert events.publish("conversation.404", {"type": "token", "seq": 0})
    assert events.publish("conversation.1", {"type": "done", "seq": 1})
    assert receive(redis_layer, loop, channel, 1) == [{"type": "done", "seq": 1}]
