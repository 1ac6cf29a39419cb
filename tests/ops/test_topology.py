"""The production topology on one machine (docs/deploy.md): daphne, a Celery GPU worker on
the `inference` queue, a CPU worker on `ops`, Celery beat, PostgreSQL and a private Redis,
all real processes. Through it: readiness, metrics, a chat, the answer cache, overload."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time

import httpx
import pytest
from PIL import Image

from assistant import services
from assistant.models import Message

from .. import screens
from ..servers import PYTHON, REPO, running, start_celery_worker, start_daphne
from .helpers import ask_and_collect, ask_only, start_beat, wait_ready, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

METRICS_TOKEN = "test-metrics-token"


def test_topology_health_metrics_chat_and_cache(owner, celery_env, cookie_for, tmp_path):
    env = celery_env(
        METRICS_TOKEN=METRICS_TOKEN,
        METRICS_ALLOWED_NETWORKS="",  # only the token opens /metrics
        ANSWER_CACHE="user",
        ANSWER_SWEEP_INTERVAL="1",
        FIXEDRATE_TOKENS_PER_SECOND="50",
    )
    cookie = cookie_for(owner)
    daphne, url = start_daphne(env, tmp_path)
    with running(daphne):
        # No worker yet: alive, not ready; the command agrees.
        assert httpx.get(f"{url}/healthz").status_code == 200
        not_ready = httpx.get(f"{url}/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["engine"]["ok"] is False
        assert not_ready.json()["checks"]["database"]["ok"] is True
        command = subprocess.run(
            [PYTHON, "manage.py", "check_health"], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert command.returncode == 1 and "engine: FAILED" in command.stdout

        gpu = start_celery_worker(env, tmp_path, name="gpu1")
        cpu = start_celery_worker(env, tmp_path, name="ops1", queues="ops", concurrency=1)
        beat = start_beat(env, tmp_path)
        with running(beat, cpu, gpu):
            ready = wait_ready(url)
            assert ready["checks"]["engine"]["engines"] == ["fixedrate"]
            command = subprocess.run(
                [PYTHON, "manage.py", "check_health"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
            )
            assert command.returncode == 0, command.stdout + command.stderr

            # A chat through daphne -> Redis -> worker -> Redis -> daphne.
            upload = services.upload_create(owner=owner, data=screens.png_bytes())
            first = services.conversation_create(owner=owner)
            question = {
                "type": "ask",
                "text": "Which order is pending?",
                "upload_id": str(upload.pk),
            }
            events = asyncio.run(ask_and_collect(url, first.pk, cookie, question))
            assert events[-1]["type"] == "done", events
            assert events[-1]["engine"] == "fixedrate"

            # The same screen, recompressed as JPEG (other bytes, same content), and the
            # question typed differently: answered from the cache, at once.
            buffer = io.BytesIO()
            Image.open(io.BytesIO(screens.png_bytes())).convert("RGB").save(
                buffer, "JPEG", quality=85
            )
            again = services.upload_create(owner=owner, data=buffer.getvalue())
            assert again.sha256 != upload.sha256
            second = services.conversation_create(owner=owner)
            started = time.monotonic()
            events = asyncio.run(
                ask_and_collect(
                    url,
                    second.pk,
                    cookie,
                    {"type": "ask", "text": "which ORDER is pending", "upload_id": str(again.pk)},
                )
            )
            elapsed = time.monotonic() - started
            accepted = events[0]
            assert accepted["answer"]["status"] == "done", events
            assert accepted["answer"]["engine"] == "fixedrate (cached)"
            assert (
                accepted["answer"]["text"] == Message.objects.get(reply_to__conversation=first).text
            )
            assert elapsed < 1.0, elapsed  # no engine trip (the engine alone takes 0.8 s)
            # The model that wrote the cached answer comes along with it.
            assert Message.objects.get(pk=accepted["answer"]["id"]).model == "fixedrate"

            # A different screenshot with the same question is not a hit.
            other = services.upload_create(
                owner=owner, data=screens.png_bytes(Image.new("RGB", (800, 600), "navy"))
            )
            third = services.conversation_create(owner=owner)
            events = asyncio.run(
                ask_and_collect(
                    url,
                    third.pk,
                    cookie,
                    {"type": "ask", "text": "Which order is pending?", "upload_id": str(other.pk)},
                )
            )
            assert events[-1]["engine"] == "fixedrate"

            # Beat schedules the sweep; the CPU worker on the `ops` queue runs it.
            wait_until(lambda: "ops.answers_sweep" in cpu.log(), timeout=15)

            # Metrics: only with the token; then the figures of all the above.
            assert httpx.get(f"{url}/metrics").status_code == 401
            wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            scrape = httpx.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
            assert scrape.status_code == 200
            text = scrape.text
            for expected in (
                'glimpse_http_requests_total{method="GET",route="readyz",status="200"}',
                "glimpse_http_request_duration_seconds_bucket",
                "glimpse_websocket_connections_opened_total 3.0",
                'glimpse_answer_cache_lookups_total{result="hit"} 1.0',
                'glimpse_answer_cache_lookups_total{result="miss"} 2.0',
                'glimpse_admission_decisions_total{decision="admitted"} 2.0',
                'glimpse_engine_up{engine="fixedrate",model="fixedrate",node="gpu1@',
                "glimpse_time_to_first_token_seconds_bucket",
                "glimpse_time_per_output_token_seconds_count",
                "glimpse_inference_queue_depth 0.0",
            ):
                assert expected in text, expected

            def tokens_generated():
                scrape = httpx.get(
                    f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                )
                lines = scrape.text.splitlines()
                found = [
                    line for line in lines if line.startswith("glimpse_tokens_generated_total")
                ]
                return len(found) == 1 and float(found[0].split()[-1]) == 80.0  # 2 answers x 40

            # Workers report in their heartbeat, every second here.
            wait_until(tokens_generated, timeout=5)


def test_overload_is_refused_fast_or_answered_by_the_fallback(
    owner, celery_env, cookie_for, tmp_path
):
    # One answer at a time on the worker, at most one waiting in the queue.
    env = celery_env(INFERENCE_QUEUE_LIMIT="1", FIXEDRATE_TOKENS_PER_SECOND="10")
    cookie = cookie_for(owner)
    worker = start_celery_worker(env, tmp_path, name="gpu1", concurrency=1)
    daphne, url = start_daphne(env, tmp_path)
    fallback_daphne, fallback_url = start_daphne(
        {**env, "LITE_FALLBACK": "1", "LITE_FALLBACK_ENGINE": "fixedrate"}, tmp_path
    )
    with running(daphne, fallback_daphne, worker):
        wait_ready(url)
        conversations = [services.conversation_create(owner=owner) for _ in range(4)]
        question = {"type": "ask", "text": "Which order is pending?"}
        streaming = asyncio.run(ask_only(url, conversations[0].pk, cookie, question))
        wait_until(
            lambda: Message.objects.get(pk=streaming["message_id"]).status == "streaming",
            timeout=10,
        )
        queued = asyncio.run(ask_only(url, conversations[1].pk, cookie, question))
        assert queued["type"] == "accepted"

        # Saturated: refused at once, nothing written.
        before = Message.objects.count()
        started = time.monotonic()
        refused = asyncio.run(ask_only(url, conversations[2].pk, cookie, question))
        assert time.monotonic() - started < 1.0
        assert refused == {
            "type": "error",
            "message": "The assistant is busy right now. Please try again in a few seconds.",
            "code": "overloaded",
        }
        assert Message.objects.count() == before

        # Where the operator enabled it, the lite fallback answers instead, marked so.
        events = asyncio.run(ask_and_collect(fallback_url, conversations[3].pk, cookie, question))
        assert events[-1]["type"] == "done", events
        assert events[-1]["engine"] == "fixedrate (fallback)"
        answer = Message.objects.get(pk=events[0]["message_id"])
        assert answer.status == "done" and answer.engine == "fixedrate (fallback)"

        # The queued one is answered in turn: bounded, not lost.
        wait_until(
            lambda: Message.objects.get(pk=queued["message_id"]).status == "done", timeout=20
        )
