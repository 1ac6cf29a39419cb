"""Django's ASGI handler without two thread starts per request.

Django runs every HTTP request in a thread-sensitive context of its own, so that the
request's synchronous parts (the request_started receivers, `response.close()` and any
sync view or middleware) share one thread that no other request waits on. asgiref builds
that thread when the first of them runs and, at the end, starts a second thread to join
it: two thread starts and a join for every request, even one whose view is async and
never touches the thread otherwise.

Here each request still gets a one-thread executor to itself, but a finished request
hands it back for the next one instead of throwing it away. Measured: 0.4 ms less CPU
per request in-process (GET /healthz, 2.15 -> 1.73 ms), and a cached `POST /v1/chat`
after bench/load_platform.py's 500-client phase went from p50 12.3 and 14.0 ms to 10.5
and 10.6 ms (docs/performance.md, "Platform").
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

# Idle executors kept for later requests. Concurrent requests beyond this still get a
# thread each; their executors are shut down when they finish instead of being kept.
MAX_IDLE_EXECUTORS = 32
_executor_numbers = itertools.count(1)


class ReusedThreadASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            # Django's own refusal, for the same misrouting.
            return await super().__call__(scope, receive, send)
        executor = self._idle.pop() if self._idle else self._new_executor()
        finished = False
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
            finished = True
        finally:
            # Only a request that ran to its end is known to have left its thread idle:
            # one cancelled mid-call may still have work queued there.
            if finished and len(self._idle) < MAX_IDLE_EXECUTORS:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        # Numbered, so that a thread dump tells the requests' threads apart.
        number = next(_executor_numbers)
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"django-request-{number}")
