"""Faults on real processes: a GPU worker killed with SIGKILL mid-answer, a worker killed
before it started an answer, Redis killed and restarted during a stream.

Topology in each test: daphne (with its watchdog thread) and Celery workers running the
fixed-rate engine, PostgreSQL (the test database) and a private redis-server.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from assistant import services
from assistant.models import Message

from ..servers import running, start_celery_worker, start_daphne
from .helpers import (
    Supervisor,
    ask_and_collect,
    ask_only,
    follow_like_the_page,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

ASK = {"type": "ask", "text": "Which order is still pending?"}


def test_worker_killed_mid_answer_fails_fast_and_retry_works(
    owner, celery_env, cookie_for, tmp_path
):
    # A short visibility timeout, so the killed worker's task comes back within the test.
    env = celery_env(BROKER_VISIBILITY_TIMEOUT="6", BROKER_RESTORE_INTERVAL="1")
    conversation = services.conversation_create(owner=owner)
    cookie = cookie_for(owner)
    worker = start_celery_worker(env, tmp_path, name="gpu1")
    daphne, url = start_daphne(env, tmp_path)
    with running(daphne, worker):  # stopping a killed worker is a no-op
        killed_at = {}

        async def kill_after_two_tokens(event, _sock):
            if event["type"] == "token" and event["seq"] == 2:
                worker.kill()  # SIGKILL to the whole process group: no handler runs
                killed_at["t"] = time.monotonic()

        events = asyncio.run(
            ask_and_collect(url, conversation.pk, cookie, ASK, on_event=kill_after_two_tokens)
        )
        final = events[-1]
        assert final["type"] == "error" and final["code"] == "worker_lost", events
        # Lease TTL 3 s + one watchdog tick: the client knows within seconds.
        waited = final["_t"] - killed_at["t"]
        assert waited < 8, waited
        lost = Message.objects.get(pk=events[0]["message_id"])
        assert lost.status == "failed" and "worker went away" in lost.error

        # A new worker; asking again in the same conversation works.
        retry_worker = start_celery_worker(env, tmp_path, name="gpu2")
        with running(retry_worker):
            events = asyncio.run(ask_and_collect(url, conversation.pk, cookie, ASK))
            assert events[-1]["type"] == "done", events
            # The killed worker's unacknowledged task comes back (visibility timeout) and
            # finds its answer failed: it does nothing, nothing is answered twice.
            wait_until(
                lambda: retry_worker.log().count("inference.generate_answer") >= 3,
                timeout=30,
                message="the killed task was not redelivered",
            )
            wait_until(
                lambda: f"message {lost.pk} is final already" in retry_worker.log(),
                timeout=10,
                message=retry_worker.log()[-3000:],
            )
        lost.refresh_from_db()
        assert lost.status == "failed" and lost.text == ""
        answers = conversation.messages.filter(role="assistant").order_by("pk")
        assert [a.status for a in answers] == ["failed", "done"]
        assert answers[1].completion_tokens == 40


def test_task_of_a_worker_killed_before_starting_is_redelivered_and_runs(
    owner, celery_env, cookie_for, tmp_path
):
    env = celery_env(BROKER_VISIBILITY_TIMEOUT="5", BROKER_RESTORE_INTERVAL="1")
    conversation = services.conversation_create(owner=owner)
    cookie = cookie_for(owner)
    # This worker takes the task but is still "loading weights" (30 s) when it dies.
    slow = start_celery_worker(
        {**env, "INFERENCE_WARMUP": "0", "FIXEDRATE_LOAD_SECONDS": "30"}, tmp_path, name="slow"
    )
    daphne, url = start_daphne(env, tmp_path)
    with running(daphne, slow):
        accepted = asyncio.run(ask_only(url, conversation.pk, cookie, ASK))
        answer = Message.objects.get(pk=accepted["message_id"])
        wait_until(lambda: "inference.generate_answer" in slow.log(), timeout=20)
        slow.kill()
        answer.refresh_from_db()
        assert answer.status == "pending"
        fresh = start_celery_worker(env, tmp_path, name="fresh")
        with running(fresh):
            wait_until(
                lambda: Message.objects.get(pk=answer.pk).status == "done",
                timeout=40,
                message="the redelivered task did not answer",
            )
        response = httpx.get(
            f"{url}/conversations/{conversation.pk}/messages/",
            cookies={"sessionid": cookie},
            headers={"Accept": "application/json"},
        )
        statuses = [m["status"] for m in response.json()["messages"] if m["role"] == "assistant"]
        assert statuses == ["done"]


def test_redis_restarted_during_a_stream_recovers_by_itself(
    owner, celery_env, redis_server, cookie_for, tmp_path
):
    env = celery_env()
    conversation = services.conversation_create(owner=owner)
    cookie = cookie_for(owner)
    # Celery 5.7/kombu 5.7 lose the broker consumer for good when Redis vanishes under
    # them ("Unrecoverable error" on restoring unacked messages) and the worker exits
    # after finishing its running answers; the supervisor (systemd Restart=always in
    # production) starts it again.
    worker = Supervisor(lambda: start_celery_worker(env, tmp_path, name="gpu1"))
    daphne, url = start_daphne(env, tmp_path)
    with running(daphne, worker):

        async def restart_redis(event, _sock):
            if event["type"] == "token" and event["seq"] == 2:
                redis_server.kill()  # SIGKILL, no persistence: every key is gone
                await asyncio.sleep(1.0)
                redis_server.start()

        result = asyncio.run(
            follow_like_the_page(
                url, conversation.pk, cookie, ASK, on_event=restart_redis, timeout=60
            )
        )
        answer = Message.objects.get(reply_to__conversation=conversation)
        # The worker kept generating through the outage; the page got its socket back,
        # caught up from the stored conversation and shows the whole answer.
        assert result["final"]["status"] == "done", result
        assert answer.status == "done" and answer.completion_tokens == 40
        assert result["final"]["text"] == answer.text
        print("redis restart:", {k: v for k, v in result.items() if k != "events"})

        # The platform works again without anyone touching it: readiness (heartbeats
        # rewritten), broker, channel layer.
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=20)
        events = asyncio.run(ask_and_collect(url, conversation.pk, cookie, ASK, timeout=30))
        assert events[-1]["type"] == "done", events
        assert [e["seq"] for e in events[1:]] == list(range(len(events) - 1))
        print("worker restarts by the supervisor:", worker.restarts)
