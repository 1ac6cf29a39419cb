"""The HTTP handler (glimpse/http_handler.py), through its ASGI surface: every request
keeps a thread of its own for its synchronous parts, and finished requests leave their
threads to later ones instead of starting new ones."""

import asyncio
import threading

import pytest
from django.core.signals import request_started

from glimpse.http_handler import MAX_IDLE_EXECUTORS, ReusedThreadASGIHandler


def http_scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def get(app, path: str = "/healthz") -> int:
    """One request as a server would make it; the response's status."""
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]
    hung_up = asyncio.Event()
    sent = []

    async def receive():
        if incoming:
            return incoming.pop()
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(http_scope(path), receive, send)
    return sent[0]["status"]


@pytest.fixture
def threads_seen():
    """The thread each request's synchronous request_started receivers ran on (by name:
    the system reuses a finished thread's ident for a new one)."""
    seen = []

    def record(**kwargs):
        seen.append(threading.current_thread().name)

    request_started.connect(record)
    yield seen
    request_started.disconnect(record)


async def test_concurrent_requests_each_have_a_thread_of_their_own(threads_seen):
    app = ReusedThreadASGIHandler()
    together = threading.Barrier(5, timeout=10)

    def meet(**kwargs):
        # Returns only once all five requests are inside their receivers at the same time:
        # five requests sharing one thread would break the barrier instead.
        together.wait()

    request_started.connect(meet)
    try:
        statuses = await asyncio.gather(*(get(app) for _ in range(5)))
    finally:
        request_started.disconnect(meet)
    assert statuses == [200] * 5
    assert len(set(threads_seen)) == 5
    assert threading.main_thread().name not in threads_seen


async def test_later_requests_reuse_the_threads_of_finished_ones(threads_seen):
    app = ReusedThreadASGIHandler()
    await asyncio.gather(*(get(app) for _ in range(3)))
    first_threads = set(threads_seen)
    running = threading.active_count()

    for _ in range(50):
        assert await get(app) == 200
    await asyncio.gather(*(get(app) for _ in range(3)))

    assert set(threads_seen) == first_threads
    assert threading.active_count() == running


async def test_a_burst_beyond_the_idle_limit_leaves_no_extra_threads(threads_seen):
    app = ReusedThreadASGIHandler()
    gate = threading.Barrier(MAX_IDLE_EXECUTORS + 8, timeout=20)
    running = threading.active_count()

    def hold(**kwargs):
        gate.wait()  # every request of the burst holds a thread at once

    request_started.connect(hold)
    try:
        statuses = await asyncio.gather(*(get(app) for _ in range(MAX_IDLE_EXECUTORS + 8)))
    finally:
        request_started.disconnect(hold)
    assert statuses == [200] * (MAX_IDLE_EXECUTORS + 8)
    # The eight beyond the limit were shut down; their threads end on their own.
    for _ in range(100):
        if threading.active_count() <= running + MAX_IDLE_EXECUTORS:
            break
        await asyncio.sleep(0.05)
    assert threading.active_count() <= running + MAX_IDLE_EXECUTORS


async def test_a_request_cancelled_midway_gives_up_its_thread(threads_seen):
    app = ReusedThreadASGIHandler()
    assert await get(app) == 200
    entered, release = threading.Event(), threading.Event()

    def stall(**kwargs):
        entered.set()
        release.wait(timeout=10)

    request_started.connect(stall)
    try:
        stalled = asyncio.ensure_future(get(app))
        await asyncio.to_thread(entered.wait, 10)
        stalled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stalled
    finally:
        request_started.disconnect(stall)
        release.set()
    stalled_thread = threads_seen[-1]
    # The next request does not queue behind whatever the cancelled one left running.
    assert await get(app) == 200
    assert threads_seen[-1] != stalled_thread
