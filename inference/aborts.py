"""Abort flags: the web side raises one, the runner that streams the answer notices it.

In the embedded mode both live in this process (a set); with Celery the runner is on
another machine, so the flag is a short-lived Redis key.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

_KEY = "glimpse:abort:{}"
_TTL_SECONDS = 3600
_local: set[str] = set()
_local_lock = threading.Lock()
_redis_client = None


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
    if _uses_redis():
        _redis().delete(_KEY.format(key))


class AbortWatcher:
    """Checks one answer's flag; Redis is asked at most every `interval` seconds."""

    def __init__(self, message_id, *, interval: float = 0.2):
        self.key = str(message_id)
        self.interval = interval
        self._next_check = 0.0
        self.aborted = False

    def check(self) -> bool:
        if self.aborted:
            return True
        with _local_lock:
            if self.key in _local:
                self.aborted = True
                return True
        if _uses_redis():
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self.interval
                try:
                    self.aborted = bool(_redis().exists(_KEY.format(self.key)))
                except Exception:
                    # Redis briefly away: keep generating, check again later.
                    logger.debug("abort flag check failed", exc_info=True)
        return self.aborted
