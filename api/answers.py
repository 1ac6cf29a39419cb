"""Waiting for an answer without holding a thread.

The engine (embedded thread or Celery worker) publishes numbered events to the
conversation's channel-layer group and stores the final message. An API request joins
that group on a fresh channel of its own *before* the question is asked, so no event can
be missed, then reads events for its answer until `done` or `error`.

If the channel goes quiet (an event lost on the way, a layer restart) the stored message
is the source of truth: it is checked every POLL_SECONDS and a final state there ends
the wait just like the final event would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connections

from assistant.models import Message

from .errors import ApiError

FINAL_EVENTS = {"done", "error"}
POLL_SECONDS = 5.0
# Engine failures that mean "try again later" rather than "this request is broken".
UNAVAILABLE_CODES = {
    "engine_unavailable",
    "overloaded",
    "engine_overloaded",
    "queue_full",
    "interrupted",
    "worker_lost",
    "lease_expired",
    "model_unavailable",
    "out_of_memory",
}


def in_worker_thread(func):
    """Run blocking work (ORM, image decoding, fetching a URL) on a pool thread, not on the
    shared sync thread: one slow image fetch must not hold up every other sync view."""

    def call(*args, **kwargs):
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            # Pool threads are not request-scoped: give the connection back rather than
            # keep one open per idle thread (reconnecting costs milliseconds).
            connections.close_all()

    return sync_to_async(call, thread_sensitive=False)


class AnswerListener:
    """One request's subscription to a conversation's event group."""

    def __init__(self, group: str):
        self.group = group
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self._receiving: asyncio.Future | None = None

    async def join(self) -> AnswerListener:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        return self

    async def leave(self) -> None:
        if self._receiving is not None and not self._receiving.done():
            self._receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiving
        if self.channel is not None:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(self.group, self.channel)
            self.channel = None

    async def events(self, message_id: int, *, timeout: float) -> AsyncIterator[dict]:
        """Events of one answer, ending with its final one. Yields {"type": "idle"} when
        nothing came for POLL_SECONDS (stream keep-alives hang on it). Raises ApiError 504
        when the answer takes longer than `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ApiError(
                    504,
                    f"No answer within {timeout:g} seconds; the request was stopped.",
                    "generation_timeout",
                )
            if self._receiving is None:
                # One receive stays pending across quiet periods: cancelling it on every
                # tick could drop a message that arrives at that moment.
                self._receiving = asyncio.ensure_future(self.layer.receive(self.channel))
            done, _ = await asyncio.wait({self._receiving}, timeout=min(POLL_SECONDS, remaining))
            if not done:
                stored = await stored_final_event(message_id)
                if stored is not None:
                    yield stored
                    return
                yield {"type": "idle"}
                continue
            message = self._receiving.result()
            self._receiving = None
            event = message.get("event") or {}
            if event.get("message_id") != message_id:
                continue
            yield event
            if event.get("type") in FINAL_EVENTS:
                return


@in_worker_thread
def stored_final_event(message_id: int) -> dict | None:
    """The final event rebuilt from the stored answer, or None while it is unfinished."""
    answer = Message.objects.filter(pk=message_id).first()
    if answer is None:
        return {
            "type": "error",
            "message_id": message_id,
            "message": "The answer was deleted.",
            "code": "answer_deleted",
        }
    if not answer.is_final:
        return None
    if answer.status == Message.Status.FAILED:
        return {
            "type": "error",
            "message_id": message_id,
            "message": answer.error or "The answer failed.",
            "code": "engine_error",
        }
    return {
        "type": "done",
        "message_id": message_id,
        "text": answer.text,
        "finish_reason": "abort" if answer.status == Message.Status.ABORTED else "stop",
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
        },
        "engine": answer.engine,
    }


def error_from_event(event: dict) -> ApiError:
    """The HTTP error for an answer's `error` event."""
    code = event.get("code") or "engine_error"
    message = event.get("message") or "The answer failed."
    if code in UNAVAILABLE_CODES or "unavailable" in code or "overload" in code:
        return ApiError(503, message, code, retry_after=settings.API_UNAVAILABLE_RETRY_AFTER)
    return ApiError(500, message, code)
