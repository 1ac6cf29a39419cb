"""Liveness in Redis, written from the worker process: answer leases and engine heartbeats.

- While a Celery worker streams an answer it holds `glimpse:lease:<message id>`, a key with
  a few seconds' TTL refreshed every second. If the worker dies (SIGKILL, power loss)
  the key expires and the web side's watchdog (ops/watchdog.py) fails the answer.
  Taking the lease is also what makes a redelivered task safe: only one worker ever
  streams a given answer.
- Every HEARTBEAT_INTERVAL seconds the worker writes `glimpse:engine:<node>`: engine name,
  model, load, counters and, where torch has a GPU, its memory and utilisation. /readyz
  and /metrics read these; nothing on the web side imports torch.

One daemon thread per worker process does both, so a stalled engine cannot stop the
heartbeat and a thousand streams cost one Redis round trip a second, not a thousand.
In the embedded mode there are no leases (engine and web share one process) and the
heartbeat is the in-process engine's own health.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time

from django.conf import settings

from .stats import engine_stats

logger = logging.getLogger(__name__)

LEASE_KEY = "glimpse:lease:{}"
ENGINE_KEY_PREFIX = "glimpse:engine:"

_client = None
_client_lock = threading.Lock()


def redis_client():
    """A shared client with short timeouts: liveness must never hang on a dead Redis."""
    global _client
    with _client_lock:
        if _client is None:
            import redis

            _client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
            )
        return _client


def uses_redis() -> bool:
    return settings.INFERENCE_MODE == "celery" and bool(settings.REDIS_URL)


# --- the worker side ------------------------------------------------------------------------


class _Liveness:
    def __init__(self):
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.node = self.owner
        self._leases: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._heartbeat = False

    def start(self, *, node: str | None = None, heartbeat: bool = False) -> None:
        with self._lock:
            if node:
                self.node = node
            self._heartbeat = self._heartbeat or heartbeat
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="glimpse-liveness", daemon=True
                )
                self._thread.start()

    def lease_acquire(self, message_id: int) -> bool:
        """Take the answer's lease; False when another live worker holds it."""
        if not uses_redis():
            return True
        key = LEASE_KEY.format(message_id)
        taken = redis_client().set(
            key, self.owner, nx=True, px=int(settings.ANSWER_LEASE_TTL * 1000)
        )
        if not taken:
            return False
        with self._lock:
            self._leases.add(key)
        self.start()
        return True

    def lease_release(self, message_id: int) -> None:
        if not uses_redis():
            return
        key = LEASE_KEY.format(message_id)
        with self._lock:
            self._leases.discard(key)
        try:
            redis_client().delete(key)
        except Exception:
            logger.warning("could not release the lease of message %s", message_id)

    def _loop(self) -> None:
        next_heartbeat = 0.0
        while True:
            try:
                self._refresh_leases()
                if self._heartbeat and time.monotonic() >= next_heartbeat:
                    next_heartbeat = time.monotonic() + settings.HEARTBEAT_INTERVAL
                    self._write_heartbeat()
            except Exception:
                # Redis restarting: keep going; the keys come back on the next beat.
                logger.warning("liveness update failed; retrying", exc_info=True)
            time.sleep(settings.ANSWER_LEASE_REFRESH)

    def _refresh_leases(self) -> None:
        with self._lock:
            keys = list(self._leases)
        if not keys:
            return
        # SET rather than EXPIRE: after a Redis restart the keys are gone and must come
        # back before the watchdog's grace runs out.
        pipe = redis_client().pipeline(transaction=False)
        ttl_ms = int(settings.ANSWER_LEASE_TTL * 1000)
        for key in keys:
            pipe.set(key, self.owner, px=ttl_ms)
        pipe.execute()

    def _write_heartbeat(self) -> None:
        from .worker import loaded_engine

        engine = loaded_engine()
        if engine is None:
            return  # not loaded (yet): no heartbeat, so /readyz says not ready
        health = engine.health()
        beat = {
            "node": self.node,
            "pid": os.getpid(),
            "engine": getattr(engine, "name", "?"),
            "model": health.get("model") or settings.MODEL_ID,
            "ok": bool(health.get("ok", True)),
            "load": engine_stats.in_flight(),
            "capacity": health.get("max_batch"),
            "ts": time.time(),
            "gpu": gpu_stats(),
            "stats": engine_stats.snapshot(),
        }
        ttl = max(1, round(settings.HEARTBEAT_MAX_AGE))
        redis_client().set(ENGINE_KEY_PREFIX + self.node, json.dumps(beat), ex=ttl)


liveness = _Liveness()


def gpu_stats() -> dict:
    """GPU memory and utilisation of this worker's device; {} without a GPU.

    Only when the engine has already imported torch: a CPU engine must not pay for it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    try:
        if not torch.cuda.is_available():
            return {}
        free, total = torch.cuda.mem_get_info()
        stats = {"memory_used_bytes": total - free, "memory_total_bytes": total}
        try:
            stats["utilization"] = torch.cuda.utilization()  # needs the NVML bindings
        except Exception:
            stats["utilization"] = None
        return stats
    except Exception:
        logger.debug("could not read GPU statistics", exc_info=True)
        return {}


# --- the web side ------------------------------------------------------------------------


def heartbeats() -> list[dict]:
    """Every worker heartbeat still in Redis (expired ones are gone by TTL)."""
    client = redis_client()
    keys = list(client.scan_iter(match=ENGINE_KEY_PREFIX + "*", count=100))
    if not keys:
        return []
    beats = []
    for raw in client.mget(keys):
        if raw:
            try:
                beats.append(json.loads(raw))
            except ValueError:
                continue
    return beats


def leases_held(message_ids: list[int]) -> dict[int, bool]:
    if not message_ids:
        return {}
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    for message_id in message_ids:
        pipe.exists(LEASE_KEY.format(message_id))
    return {m: bool(found) for m, found in zip(message_ids, pipe.execute(), strict=True)}
