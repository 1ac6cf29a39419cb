"""Django's ASGI handler without two thread starts per request.

Django runs every HTTP request in a thread-sensitive context of its own, so that the
request's synchronous parts (the request_started receivers, `response.close()` and any
sync view or middleware) share one thread that no other request waits on. asgiref builds
that thread when the first of them runs and, at the end, starts a second thread to join
it: two thread starts and a join for every request, even one whose view is async and
never touches the thread otherwise.

Here each request still gets a one-thread executor to itself, but a finished request
hands it back for the next one instead of throwing it away. (With DB_POOL=false, a
thread's persistent database connection now outlives its request, as in a threaded WSGI
server: up to MAX_IDLE_EXECUTORS of them per process.) Measured: 0.4 ms less CPU
per request in-process (GET /healthz, 2.15 -> 1.73 ms), and a cached `POST /v1/chat`
after bench/load_platform.py's 500-client phase went from p50 12.3 and 14.0 ms to 10.5
and 10.6 ms (docs/performance.md, "Platform").
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

# Idle executors kept for later requests. Concurrent requests beyond this still get a
# thread each; their executors are shut down when they finish instead of being kept.
MAX_IDLE_EXECUTORS = 32
_executor_numbers = itertools.count(1)


class RequestThread(ThreadPoolExecutor):
    """One request's thread, which knows whether all the work given to it has finished."""

    def __init__(self):
        # Numbered, so that a thread dump tells the requests' threads apart.
        number = next(_executor_numbers)
        super().__init__(max_workers=1, thread_name_prefix=f"django-request-{number}")
        self._last: Future | None = None

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self._last = super().submit(fn, *args, **kwargs)
        return self._last

    def idle(self) -> bool:
        # One worker runs the work in order: when the last piece is done, all of it is.
        return self._last is None or self._last.done()


class ReusedThreadASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self._idle: list[RequestThread] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            # Django's own refusal, for the same misrouting.
            return await super().__call__(scope, receive, send)
        # Only the event loop's thread touches the list, and nothing is awaited between
        # looking at it and changing it.
        executor = self._idle.pop() if self._idle else RequestThread()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # Django's handle() ends every request that did synchronous work with one
            # more call on this thread (response.close(), or the request_finished
            # receivers when the client went away), queued behind anything still running
            # there, such as a sync view whose client hung up. So a request that returns
            # has normally left its thread idle. A request cancelled from outside (the
            # server's shutdown or its application timeout) may not have: such a thread
            # is let go, never handed to the next request.
            if executor.idle() and len(self._idle) < MAX_IDLE_EXECUTORS:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    def shutdown(self) -> None:
        """Let the idle threads end (their work is done; nothing waits for them)."""
        while self._idle:
            self._idle.pop().shutdown(wait=False)
