"""Publishing stream events to a conversation's channel-layer group.

Runners publish from plain threads (the embedded engine pool, Celery's thread pool), but
channel layers are asyncio objects. The in-memory layer's queues belong to the server's
event loop, so its sends must run on that loop; the Redis layer gets one long-lived
publisher loop per process instead of a new loop (and connection) per message.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0

_server_loop: asyncio.AbstractEventLoop | None = None
_publisher_loop: asyncio.AbstractEventLoop | None = None
_publisher_lock = threading.Lock()


def bind_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the ASGI entry point: the loop that owns the in-memory layer's queues."""
    global _server_loop
    _server_loop = loop


def _publisher() -> asyncio.AbstractEventLoop:
    global _publisher_loop
    with _publisher_lock:
        if _publisher_loop is None or _publisher_loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="glimpse-publisher", daemon=True).start()
            _publisher_loop = loop
        return _publisher_loop


def publish(group: str, event: dict, *, wait: bool = True) -> bool:
    """Send one event to a group; True when handed to the layer. Never raises: a client
    that misses events can still read the stored answer. `wait=False` queues the send on
    the publisher loop and returns at once (events queued so keep their order)."""
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        loop = _server_loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return False  # no server loop: nobody can be listening in this process
    else:
        loop = _publisher()
    message = {"type": "chat.event", "event": event}
    try:
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
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
