"""The HTTP handler (glimpse/http_handler.py), through its ASGI surface: every request
keeps a thread of its own for its synchronous parts, and finished requests leave their
threads to later ones instead of starting new ones."""

import asyncio
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import connection
from django.http import HttpResponse
from django.urls import include, path

from glimpse.http_handler import MAX_IDLE_EXECUTORS, ReusedThreadASGIHandler

from ..asgi_http import asgi_get


class SlowView:
    """A synchronous view that runs until the test lets it return."""

    entered = threading.Event()
    release = threading.Event()

    @classmethod
    def view(cls, request):
        cls.entered.set()
        cls.release.wait(timeout=10)
        return HttpResponse("late")


def users_view(request):
    return HttpResponse(str(get_user_model().objects.count()))


# The site's own routes plus two that only these tests use (ROOT_URLCONF points here).
urlpatterns = [
    path("test/slow", SlowView.view),
    path("test/users", users_view),
    path("", include("glimpse.urls")),
]


async def get(app, path: str = "/healthz", hang_up: asyncio.Event | None = None) -> int | None:
    return await asgi_get(app, path, hang_up)


def alive(thread_names) -> int:
    """How many of these threads still run (other tests' threads may be ending too)."""
    names = set(thread_names)
    return sum(t.name in names for t in threading.enumerate())


@pytest.fixture
def app():
    handler = ReusedThreadASGIHandler()
    yield handler
    handler.shutdown()


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


async def test_concurrent_requests_each_have_a_thread_of_their_own(app, threads_seen):
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


async def test_later_requests_reuse_the_threads_of_finished_ones(app, threads_seen):
    await asyncio.gather(*(get(app) for _ in range(3)))
    first_threads = set(threads_seen)

    for _ in range(50):
        assert await get(app) == 200
    await asyncio.gather(*(get(app) for _ in range(3)))

    assert set(threads_seen) == first_threads


async def test_a_burst_beyond_the_idle_limit_leaves_no_extra_threads(app, threads_seen):
    gate = threading.Barrier(MAX_IDLE_EXECUTORS + 8, timeout=20)

    def hold(**kwargs):
        gate.wait()  # every request of the burst holds a thread at once

    request_started.connect(hold)
    try:
        statuses = await asyncio.gather(*(get(app) for _ in range(MAX_IDLE_EXECUTORS + 8)))
    finally:
        request_started.disconnect(hold)
    assert statuses == [200] * (MAX_IDLE_EXECUTORS + 8)
    # The eight beyond the limit were shut down; their threads end on their own.
    assert len(set(threads_seen)) == MAX_IDLE_EXECUTORS + 8
    for _ in range(100):
        if alive(threads_seen) == MAX_IDLE_EXECUTORS:
            break
        await asyncio.sleep(0.05)
    assert alive(threads_seen) == MAX_IDLE_EXECUTORS


async def test_a_request_cancelled_midway_gives_up_its_thread(app, threads_seen):
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


async def test_a_client_gone_during_a_sync_view_keeps_its_thread_until_the_view_returns(
    app, threads_seen, settings
):
    settings.ROOT_URLCONF = __name__
    SlowView.entered.clear()
    SlowView.release.clear()
    hang_up = asyncio.Event()
    slow = asyncio.ensure_future(get(app, "/test/slow", hang_up=hang_up))
    try:
        await asyncio.to_thread(SlowView.entered.wait, 10)
        slow_thread = threads_seen[-1]
        hang_up.set()
        await asyncio.sleep(0.2)
        # Another request meanwhile is answered on a thread of its own, not queued behind
        # the view that is still running.
        assert await get(app) == 200
        assert threads_seen[-1] != slow_thread
        assert not slow.done()
    finally:
        SlowView.release.set()
    assert await asyncio.wait_for(slow, 10) is None  # the client had gone
    # Only now, its view returned, is the thread handed to the next request.
    assert await get(app) == 200
    assert threads_seen[-1] == slow_thread


@pytest.mark.django_db(transaction=True)
async def test_a_reused_thread_gives_back_its_database_connection_each_request(app, settings):
    settings.ROOT_URLCONF = __name__
    open_after_request, threads = [], set()

    def check(**kwargs):
        # Runs after Django's own request_finished receiver, on the request's thread.
        open_after_request.append(connection.connection is not None)
        threads.add(threading.current_thread().name)

    request_finished.connect(check)
    try:
        for _ in range(3):
            assert await get(app, "/test/users") == 200
    finally:
        request_finished.disconnect(check)
    assert len(threads) == 1
    assert open_after_request == [False, False, False]
