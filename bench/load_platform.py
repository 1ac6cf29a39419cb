"""Load test of the platform itself: what daphne, Redis, Celery and the runner add to an
answer, measured with the fixed-rate engine (inference/fixedrate.py) so the GPU is not
in the picture. Loopback only, bounded in clients and time.

It starts its own topology: a private redis-server, one Celery worker running the
fixed-rate engine (tokens stamped with their emit time), ONE daphne process. Then:

1. streaming: N websocket clients, each in its own conversation, ask at once; every
   chunk's relay latency (engine emit -> client receive, same clock) and each answer's
   time to first token (question sent -> first token, the engine's own delay being 0,
   so all of it is platform overhead) are recorded.
2. cached REST: one /v1/chat answer fills the answer cache; then R requests for the same
   screenshot and question are timed (each is a new conversation answered from cache).

Usage (a migrated PostgreSQL database; nothing else needs to run):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glimpse_bench \
        .venv/bin/python bench/load_platform.py --clients 500 --tokens 20 --rate 2 --rest 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glimpse.settings")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name}: n={len(ms)} p50={percentile(ms, 50):.1f} ms p95={percentile(ms, 95):.1f} ms "
        f"p99={percentile(ms, 99):.1f} ms max={max(ms) if ms else float('nan'):.1f} ms"
    )


def setup_data(clients: int):
    import logging

    import django

    django.setup()
    # The settings log at INFO; one line per REST request would bury the figures.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.services import api_key_create
    from assistant import services
    from tests import screens

    User = get_user_model()
    user, _ = User.objects.get_or_create(username=f"bench-{int(time.time())}")
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    conversations = [services.conversation_create(owner=user).pk for _ in range(clients)]
    upload = services.upload_create(owner=user, data=screens.png_bytes())
    _, raw_key = api_key_create(user=user, name="bench")
    return cookie, conversations, str(upload.pk), raw_key


async def stream_client(url, cookie, conversation_id, results, start_gate, stop_after=None):
    import websockets

    from inference.fixedrate import decode_stamp

    ws_url = url.replace("http://", "ws://") + f"/ws/conversations/{conversation_id}/"
    headers = {"Cookie": f"sessionid={cookie}", "Origin": url.replace("127.0.0.1", "localhost")}
    async with websockets.connect(ws_url, additional_headers=headers, open_timeout=60) as sock:
        results["connected"] += 1
        await start_gate.wait()
        # Questions arrive spread over a ramp (--ask-rate per second), as users do.
        await asyncio.sleep(results["index"].pop(conversation_id) / results["ask_rate"])
        sent = time.time()
        # A question of its own: a repeated one would be answered from the answer cache,
        # replaying old stamps (the REST phase measures the cache on purpose).
        question = f"Which order is pending for client {conversation_id}?"
        await sock.send(json.dumps({"type": "ask", "text": question}))
        first = True
        chunks = 0
        while True:
            event = json.loads(await asyncio.wait_for(sock.recv(), timeout=120))
            now = time.time()
            if os.environ.get("LOAD_DEBUG"):
                print(round(now - sent, 3), event)
            if event["type"] == "accepted":
                results["accepted"] += 1
            elif event["type"] == "token":
                stamps = [decode_stamp(w) for w in event["text"].split()]
                stamps = [s for s in stamps if s is not None]
                if stamps:
                    # The chunk was flushed right after its newest token was emitted.
                    # Steady state: every client has asked and is streaming.
                    key = "relay" if results["accepted"] >= results["clients"] else "ramp_relay"
                    results[key].append(now - max(stamps))
                if first:
                    results["ttft"].append(now - sent)
                    first = False
                chunks += 1
                if stop_after and chunks == stop_after:
                    # Seen enough: stop the answer, so that the next question meets an
                    # idle platform and not this answer still streaming behind it.
                    await sock.send(json.dumps({"type": "stop", "message_id": event["message_id"]}))
            elif event["type"] in {"done", "error"} and "seq" in event:
                results[event["type"]] += 1
                return
            elif event["type"] == "error":
                results["refused"] += 1
                return


def new_results(conversations, ask_rate: float) -> dict:
    return {
        "relay": [],
        "ramp_relay": [],
        "ttft": [],
        "done": 0,
        "error": 0,
        "refused": 0,
        "connected": 0,
        "accepted": 0,
        "clients": len(conversations),
        "ask_rate": ask_rate,
        "index": {c: i for i, c in enumerate(conversations)},
    }


async def idle_ttft_phase(url, cookie, conversations):
    """One question at a time on an idle platform: the overhead a single user sees. Each
    answer is stopped after a few chunks and has ended before the next question."""
    results = new_results(conversations, 1.0)
    for conversation in conversations:
        results["index"] = {conversation: 0}
        results["accepted"] = results["clients"]
        gate = asyncio.Event()
        gate.set()
        await stream_client(url, cookie, conversation, results, gate, stop_after=4)
        await asyncio.sleep(0.5)
    return results


async def streaming_phase(url, cookie, conversations, deadline_s, ask_rate):
    results = new_results(conversations, ask_rate)
    gate = asyncio.Event()
    tasks = [
        asyncio.create_task(stream_client(url, cookie, c, results, gate)) for c in conversations
    ]
    connect_deadline = time.monotonic() + 120  # bounded: a server that refuses some
    while results["connected"] < len(conversations) and time.monotonic() < connect_deadline:
        await asyncio.sleep(0.1)
        if all(t.done() for t in tasks):
            break
    print(f"{results['connected']} websockets open on one daphne process")
    gate.set()
    started = time.monotonic()
    done, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    errors = [t.exception() for t in done if t.exception()]
    print(f"streaming phase: {time.monotonic() - started:.1f} s, {len(errors)} client errors")
    if errors:
        print("  first error:", repr(errors[0]))
    return results


def rest_phase(url, raw_key, upload_id, requests):
    import httpx

    body = {"image_url": f"glimpse://uploads/{upload_id}", "prompt": "Which order is pending?"}
    headers = {"Authorization": f"Bearer {raw_key}"}
    latencies, engines = [], {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        first = client.post("/v1/chat", json=body)
        if first.status_code != 200:
            print("REST /v1/chat unavailable:", first.status_code, first.text[:300])
            return None
        client_cpu = time.process_time()
        for _ in range(requests):
            started = time.perf_counter()
            response = client.post("/v1/chat", json=body)
            latencies.append(time.perf_counter() - started)
            engines[response.status_code] = engines.get(response.status_code, 0) + 1
    total = sum(latencies)
    print(f"REST statuses: {engines}; {requests / total:.1f} requests/s sequential")
    print(
        f"REST client CPU: {1000 * (time.process_time() - client_cpu) / requests:.1f} ms a request"
    )
    return latencies


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=20, help="tokens per answer")
    parser.add_argument("--rate", type=float, default=2.0, help="tokens per second per answer")
    parser.add_argument("--rest", type=int, default=200, help="cached /v1/chat requests")
    parser.add_argument("--ask-rate", type=float, default=25.0, help="new questions per second")
    parser.add_argument("--idle", type=int, default=30, help="sequential questions first")
    parser.add_argument("--deadline", type=float, default=240.0, help="streaming phase limit, s")
    parser.add_argument("--only-rest", action="store_true", help="skip the websocket phases")
    args = parser.parse_args()
    # A timeout's SIGTERM must still stop the servers this script started (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not os.environ.get("DATABASE_URL"):
        sys.exit("Set DATABASE_URL to a migrated PostgreSQL database.")

    from tests.ops.helpers import RedisServer
    from tests.servers import base_env, start_celery_worker, start_daphne

    cookie, conversations, upload_id, raw_key = setup_data(args.clients + args.idle)
    idle_conversations, conversations = conversations[: args.idle], conversations[args.idle :]
    from django.conf import settings

    work = Path(tempfile.mkdtemp(prefix="glimpse-load-"))
    redis_server = RedisServer(work)
    redis_server.start()
    env = base_env(
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=redis_server.url,
        INFERENCE_MODE="celery",
        INFERENCE_ENGINE="fixedrate",
        FIXEDRATE_STAMP="1",
        FIXEDRATE_TOKENS_PER_SECOND=str(args.rate),
        FIXEDRATE_ANSWER_TOKENS=str(args.tokens),
        INFERENCE_MAX_BATCH=str(args.clients + 10),
        INFERENCE_QUEUE_LIMIT=str(args.clients * 2),
        ANSWER_CACHE="shared",
        SECRET_KEY=settings.SECRET_KEY,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        DATA_DIR=str(work / "data"),
        LOG_LEVEL="WARNING",
        # Measured as deployed: no debug cursors or per-request query logs.
        DEBUG="0",
        API_KEY_RATE_PER_MINUTE="1000000",
        API_USER_RATE_PER_MINUTE="1000000",
    )
    worker = start_celery_worker(env, work, name="load", concurrency=args.clients + 10)
    daphne, url = start_daphne(env, work)
    try:
        if args.only_rest:
            latencies = rest_phase(url, raw_key, upload_id, args.rest)
            if latencies:
                print(summary("cached POST /v1/chat", latencies))
            return
        idle = asyncio.run(idle_ttft_phase(url, cookie, idle_conversations))
        print(summary("idle: time to first token (platform only: engine delay 0)", idle["ttft"]))
        print(summary("idle: chunk relay latency", idle["relay"]))
        results = asyncio.run(
            streaming_phase(url, cookie, conversations, args.deadline, args.ask_rate)
        )
        print(
            f"answers: {results['done']} done, {results['error']} failed, "
            f"{results['refused']} refused (of {args.clients})"
        )
        print(summary("while asks ramp up: chunk relay latency", results["ramp_relay"]))
        print(
            summary("all streaming: chunk relay latency (engine emit -> client)", results["relay"])
        )
        print(summary(f"{args.clients} at once: time to first token", results["ttft"]))
        latencies = rest_phase(url, raw_key, upload_id, args.rest)
        if latencies:
            print(summary("cached POST /v1/chat", latencies))
    finally:
        daphne.stop()
        worker.stop()
        redis_server.stop()
    print(f"logs in {work}")


if __name__ == "__main__":
    main()
