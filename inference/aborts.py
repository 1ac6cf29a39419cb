"""Abort flags: the web side raises one, the runner that streams the answer notices it.

In the embedded mode both live in this process (a set); with Celery the runner is on
another machine, so the flag is a short-lived Redis key. A worker streams hundreds of
answers at once: one poller thread asks Redis about all of them in a single round trip
every POLL_SECONDS, instead of each stream asking on every token (a thousand round trips
a second at 500 streams).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

_KEY = "glimpse:abort:{}"
_TTL_SECONDS = 3600
POLL_SECONDS = 0.2
_local: set[str] = set()
_watched: set[str] = set()  # answers streaming in this process, polled in Redis
_local_lock = threading.Lock()
_redis_client = None
_poller: threading.Thread | None = None


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    return _redis_client


def _uses_redis() -> bool:
    return settings.INFERENCE_MODE == "celery" and bool(settings.REDIS_URL)


def request_abort(message_id) -> None:
    key = str(message_id)
    with _local_lock:
        _local.add(key)
    if _uses_redis():
        _redis().set(_KEY.format(key), "1", ex=_TTL_SECONDS)


def clear(message_id) -> None:
    key = str(message_id)
    with _local_lock:
        _local.discard(key)
        _watched.discard(key)
    if _uses_redis():
        _redis().delete(_KEY.format(key))


def _watch(key: str) -> None:
    global _poller
    with _local_lock:
        _watched.add(key)
        if _poller is None or not _poller.is_alive():
            _poller = threading.Thread(target=_poll_loop, name="glimpse-aborts", daemon=True)
            _poller.start()


def poll_once() -> None:
    """Raise the local flag of every watched answer whose Redis flag is set."""
    with _local_lock:
        keys = list(_watched)
    if not keys:
        return
    pipe = _redis().pipeline(transaction=False)
    for key in keys:
        pipe.exists(_KEY.format(key))
    flags = pipe.execute()
    with _local_lock:
        for key, flagged in zip(keys, flags, strict=True):
            if flagged and key in _watched:
                _local.add(key)


def _poll_loop() -> None:
    while True:
        time.sleep(POLL_SECONDS)
        try:
            poll_once()
        except Exception:
            # Redis briefly away: keep generating, check again next round.
            logger.debug("abort flag poll failed", exc_info=True)


class AbortWatcher:
    """Tells one streaming answer whether it was stopped (from the local flags, which the
    poller keeps in step with Redis in the Celery mode)."""

    def __init__(self, message_id):
        self.key = str(message_id)
        self.aborted = False
        if _uses_redis():
            _watch(self.key)

    def check(self) -> bool:
        if not self.aborted:
            with _local_lock:
                self.aborted = self.key in _local
        return self.aborted
