"""The base of our middlewares: each runs in whichever mode the chain below it runs.

One sync-only middleware makes Django run the whole chain in a thread and call the
async API views back through async_to_sync: two thread switches on every request. A
subclass calls `self.get_response` as `self.is_async` says (awaiting it when True)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class EitherModeMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
