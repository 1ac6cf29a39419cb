"""Publishing stream events to a conversation's channel-layer group.

Runners publish from plain threads (the embedded engine pool, Celery's thread pool), but
channel layers are asyncio objects. The in-memory layer's queues belong to the server's
event loop, so its sends must run on that loop; the Redis layer gets one long-lived
publisher loop per process instead of a new loop (and connection) per message. That loop
sends in batches: whatever the runner threads queued while one batch was on its way goes
out in the next, in order, in two Redis round trips per batch (glimpse/channel_layer.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0

_server_loop: asyncio.AbstractEventLoop | None = None
_publisher_instance: _BatchPublisher | None = None
_publisher_lock = threading.Lock()


def bind_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the ASGI entry point: the loop that owns the in-memory layer's queues."""
    global _server_loop
    _server_loop = loop


class _BatchPublisher:
    """One loop thread that sends queued events to the channel layer, in order, many at
    a time. A thread per answer (Celery's thread pool) queues an event and waits for its
    batch; at most one batch is on its way at a time, which keeps every group's events in
    the order they were queued."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._queue: deque[tuple[str, dict, concurrent.futures.Future]] = deque()
        self._lock = threading.Lock()
        self._draining = False
        self.batches_sent = 0  # how well batching works (the tests look)
        self.events_sent = 0
        threading.Thread(
            target=self.loop.run_forever, name="glimpse-publisher", daemon=True
        ).start()

    def submit(self, group: str, message: dict) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._queue.append((group, message, future))
            start = not self._draining
            self._draining = True
        if start:
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._drain()))
        return future

    async def _drain(self) -> None:
        layer = get_channel_layer()
        while True:
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
                if not batch:
                    self._draining = False
                    return
            try:
                await _send_all(layer, [(group, message) for group, message, _ in batch])
            except Exception as exc:
                for *_, future in batch:
                    future.set_exception(exc)
            else:
                self.batches_sent += 1
                self.events_sent += len(batch)
                for *_, future in batch:
                    future.set_result(True)


async def _send_all(layer, items: list[tuple[str, dict]]) -> None:
    send_many = getattr(layer, "group_send_many", None)
    if send_many is not None:
        await send_many(items)
        return
    for group, message in items:  # a layer without batches: one by one, still in order
        await layer.group_send(group, message)


def _publisher() -> _BatchPublisher:
    global _publisher_instance
    with _publisher_lock:
        if _publisher_instance is None or _publisher_instance.loop.is_closed():
            _publisher_instance = _BatchPublisher()
        return _publisher_instance


def publish(group: str, event: dict, *, wait: bool = True) -> bool:
    """Send one event to a group; True when handed to the layer. Never raises: a client
    that misses events can still read the stored answer. `wait=False` queues the send and
    returns at once (events queued so keep their order)."""
    layer = get_channel_layer()
    message = {"type": "chat.event", "event": event}
    try:
        if isinstance(layer, InMemoryChannelLayer):
            loop = _server_loop
            if loop is None or loop.is_closed() or not loop.is_running():
                return False  # no server loop: nobody can be listening in this process
            future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        else:
            future = _publisher().submit(group, message)
        if not wait:
            future.add_done_callback(_log_failure)
            return True
        future.result(timeout=PUBLISH_TIMEOUT)
        return True
    except Exception:
        logger.warning("could not publish %s event to %s", event.get("type"), group, exc_info=True)
        return False


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("could not publish an event", exc_info=future.exception())
