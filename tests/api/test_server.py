"""The API on a real daphne process (embedded engine, lite model, in-memory channel
layer), driven from outside like a partner would: the openai SDK and plain HTTP with
server-sent events, client disconnects, quotas, and an engine that is not there."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from django.db import connection

from accounts.services import api_key_create
from assistant.models import Message
from tests.servers import base_env, start_daphne

from .conftest import QUESTION, data_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BODY_LIMIT = 4 * 1024 * 1024


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("api-server")
    env = base_env(
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(folder / "media"),
        DATA_DIR=str(folder / "data"),
        API_KEY_RATE_PER_MINUTE="1000",
        API_USER_RATE_PER_MINUTE="1000",
        # Room for every request of these tests; small enough that a test can go over it.
        API_MAX_BODY_BYTES=str(BODY_LIMIT),
    )
    process, url = start_daphne(env, folder)
    yield url
    process.stop()


@pytest.fixture
def key(owner):
    return api_key_create(user=owner, name="server tests")[1]


def sse_events(response) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a text/event-stream response, as they arrive."""
    events, name, data = [], None, []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                events.append((name, "\n".join(data)))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def image_message(png: bytes) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image_url", "image_url": {"url": data_url(png)}},
            ],
        }
    ]


def test_sdk_streams_a_completion_with_usage(server, key, orders_png):
    client = openai.OpenAI(api_key=key, base_url=f"{server}/v1", max_retries=0, timeout=120)
    stream = client.chat.completions.create(
        model="lite",
        messages=image_message(orders_png),
        max_tokens=48,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "10232" in text, text
    # role first, then the text (the runner coalesces tokens, so one piece or more),
    # one finishing chunk, and the usage chunk last.
    assert len(chunks) >= 4
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    answer = Message.objects.get(pk=int(chunks[0].id.removeprefix("chatcmpl-")))
    assert answer.status == "done" and answer.text == text


def probe(server: str, headers: dict) -> list[float]:
    """Seconds that sync views (the health check, the model list) take to answer."""
    took = []
    for path in ("/healthz", "/v1/models"):
        started = time.monotonic()
        response = httpx.get(f"{server}{path}", headers=headers, timeout=30)
        assert response.status_code == 200
        took.append(time.monotonic() - started)
    return took


def test_other_requests_are_served_while_one_waits(server, key, orders_png):
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "lite", "messages": image_message(orders_png), "max_tokens": 48}
    result = {}

    def ask():
        result["response"] = httpx.post(
            f"{server}/v1/chat/completions", json=body, headers=headers, timeout=120
        )

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + 30
    while not Message.objects.filter(role="assistant").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The non-streaming request is now waiting for its answer; other requests still run.
    took = probe(server, headers)
    answer = Message.objects.get(role="assistant")
    still_waiting = not answer.is_final
    asker.join(timeout=120)
    response = result["response"]
    assert response.status_code == 200, response.text
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert "10232" in completion["choices"][0]["message"]["content"]
    assert still_waiting, "the probe must run while the answer is being written"
    assert max(took) < 5, took


def test_concurrent_requests_of_one_key_all_succeed(server, owner):
    # Several requests of one key start answers at the same moment: the concurrency check
    # locks the key row, other requests insert rows that reference the key while holding
    # the audit chain lock; this must never deadlock (it did with FOR UPDATE).
    api_key, raw = api_key_create(user=owner, name="burst")
    api_key.max_concurrent_generations = 10
    api_key.save()
    headers = {"Authorization": f"Bearer {raw}"}
    results = []

    def ask(index):
        response = httpx.post(
            f"{server}/v1/chat",
            json={"prompt": f"Hello number {index}, what can you do?", "max_tokens": 24},
            headers=headers,
            timeout=120,
        )
        results.append((response.status_code, response.text[:200]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [status for status, _ in results] == [200] * 6, results
    assert Message.objects.filter(role="assistant", status="done").count() == 6


def test_plain_http_completion_stream_ends_with_done(server, key, orders_png):
    headers = {"Authorization": f"Bearer {key}"}
    body = {
        "model": "lite",
        "messages": image_message(orders_png),
        "stream": True,
        "max_tokens": 48,
    }
    with httpx.stream(
        "POST", f"{server}/v1/chat/completions", json=body, headers=headers, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        side_requests = probe(server, headers)  # while the stream is open
        rest = [line for line in lines if line.startswith("data:")]
    data = [first, *rest]
    assert data[-1] == "data: [DONE]"
    chunks = [json.loads(line[5:]) for line in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "10232" in "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert max(side_requests) < 5, side_requests


def test_plain_http_chat_stream_and_sdk_over_quota(server, owner, orders_png):
    api_key, raw = api_key_create(user=owner, name="one a day")
    api_key.daily_request_quota = 1
    api_key.save()
    headers = {"Authorization": f"Bearer {raw}"}
    body = {"image_url": data_url(orders_png), "prompt": QUESTION, "stream": True, "max_tokens": 48}
    with httpx.stream(
        "POST", f"{server}/v1/chat", json=body, headers=headers, timeout=120
    ) as response:
        assert response.status_code == 200
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "accepted" and names[-1] == "done" and "token" in names
    done = json.loads(events[-1][1])
    streamed = "".join(json.loads(d)["text"] for n, d in events if n == "token")
    assert done["response"] == streamed and "10232" in streamed
    assert done["message_id"] == json.loads(events[0][1])["message_id"]
    assert Message.objects.get(pk=done["message_id"]).text == streamed

    # The key's daily quota is used up: the SDK sees a RateLimitError with Retry-After.
    client = openai.OpenAI(api_key=raw, base_url=f"{server}/v1", max_retries=0)
    with pytest.raises(openai.RateLimitError) as excinfo:
        client.chat.completions.create(model="lite", messages=image_message(orders_png))
    error = excinfo.value
    assert error.body["code"] == "daily_request_quota_exceeded"
    assert int(error.response.headers["retry-after"]) > 0
    # Plain HTTP, non-streaming, same refusal, same shape.
    refused = httpx.post(f"{server}/v1/chat", json={"prompt": QUESTION}, headers=headers)
    assert refused.status_code == 429 and set(refused.json()["error"]) == {
        "type",
        "message",
        "code",
    }


def test_client_disconnect_stops_the_generation(server, key, orders_png):
    headers = {"Authorization": f"Bearer {key}"}
    body = {
        "image_url": data_url(orders_png),
        "prompt": "Describe everything on this screen.",
        "stream": True,
        "max_tokens": 400,
    }
    with httpx.stream(
        "POST", f"{server}/v1/chat", json=body, headers=headers, timeout=120
    ) as response:
        lines = response.iter_lines()
        accepted = next(line for line in lines if line.startswith("data:"))
        message_id = json.loads(accepted[5:])["message_id"]
    # The connection is closed while the engine works on the answer (reading the screen
    # takes the lite engine a moment): the server stops the generation for it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = Message.objects.get(pk=message_id)
        if answer.is_final:
            break
        time.sleep(0.2)
    assert answer.status == "aborted", (answer.status, answer.completion_tokens)

    # A non-streaming request whose client hangs up while it waits is stopped the same way.
    host, port = server.removeprefix("http://").split(":")
    payload = json.dumps({**body, "stream": False}).encode()
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        deadline = time.monotonic() + 60
        while not Message.objects.filter(role="assistant").exclude(pk=message_id).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    waiting = Message.objects.filter(role="assistant").exclude(pk=message_id).get()
    deadline = time.monotonic() + 60
    while not waiting.is_final and time.monotonic() < deadline:
        time.sleep(0.2)
        waiting.refresh_from_db()
    assert waiting.status == "aborted", (waiting.status, waiting.completion_tokens)


def test_engine_unavailable_is_503_with_retry_after(owner, tmp_path):
    env = base_env(
        DATABASE_URL=database_url(),
        DATA_DIR=str(tmp_path / "data"),
        INFERENCE_ENGINE="missing-engine",
    )
    process, url = start_daphne(env, tmp_path)
    try:
        raw = api_key_create(user=owner)[1]
        response = httpx.post(
            f"{url}/v1/chat",
            json={"prompt": QUESTION},
            headers={"Authorization": f"Bearer {raw}"},
            timeout=60,
        )
    finally:
        process.stop()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "service_unavailable_error"
    assert response.json()["error"]["code"] == "engine_unavailable"
    assert int(response.headers["retry-after"]) > 0


def test_chunked_body_without_content_length(server, key):
    """Transfer-Encoding: chunked, no Content-Length, through daphne: read like any body,
    and over API_MAX_BODY_BYTES a 413 in the one error shape."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def chunked(body: bytes):  # a generator: httpx sends it chunked, without a length
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    small = json.dumps({"prompt": "Hello", "max_tokens": 16}).encode()
    response = httpx.post(f"{server}/v1/chat", content=chunked(small), headers=headers, timeout=120)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.json()["response"]

    big = json.dumps({"prompt": "x" * (BODY_LIMIT + 1024)}).encode()
    for path in ("/v1/chat", "/v1/chat/completions"):
        response = httpx.post(f"{server}{path}", content=chunked(big), headers=headers, timeout=120)
        assert response.status_code == 413, response.text[:300]
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {
            "error": {
                "type": "invalid_request_error",
                "message": "The request body is larger than 4 MB.",
                "code": "request_too_large",
            }
        }
    assert Message.objects.filter(role="assistant").count() == 1


def test_partner_notebook_runs_against_a_live_server(server, key, monkeypatch):
    """examples/partner_api.ipynb, every code cell in order, as a partner would run it
    (GLIMPSE_URL and GLIMPSE_KEY from the environment, as its first cell reads them)."""
    notebook = json.loads((REPO / "examples" / "partner_api.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    monkeypatch.setenv("GLIMPSE_URL", server)
    monkeypatch.setenv("GLIMPSE_KEY", key)
    namespace: dict = {"__name__": "__notebook__"}
    output = io.StringIO()
    for index, source in enumerate(cells):
        # Shell and magic lines (!pip, %matplotlib) are IPython's, not Python's.
        code = "\n".join(
            "pass  # " + line if line.lstrip().startswith(("!", "%")) else line
            for line in source.splitlines()
        )
        with contextlib.redirect_stdout(output):
            try:
                exec(compile(code, f"partner_api.ipynb cell {index}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(
                    f"cell {index} failed:\n{source}\n{output.getvalue()}"
                ) from exc
    printed = output.getvalue()
    # It really talked to the server: the answers and the SDK's reply came back...
    assert "10232" in namespace["answer"]["response"], printed
    assert "10232" in namespace["completion"].choices[0].message.content, printed
    assert namespace["model"] == "lite"
    # ...the error examples printed the one error shape...
    assert "invalid_api_key" in printed and "invalid_request" in printed, printed
    # ...and the clean-up cell deleted what the notebook made.
    assert "204\n204\n" in printed, printed
    assert not Message.objects.filter(
        conversation_id=namespace["answer"]["conversation_id"]
    ).exists()
