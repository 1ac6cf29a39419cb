"""The answer watchdog: no answer stays pending or streaming forever (celery mode).

Each pass, for answers not yet final:
- streaming, and the worker's lease (inference/liveness.py) has been gone for
  ANSWER_LEASE_TTL seconds: the worker died mid-answer. Fail it ("worker_lost") and tell
  the conversation, so the client gets an error event within seconds and can ask again.
  "Gone for a while" rather than "gone now": after a Redis restart every lease is
  missing for the second it takes workers to write them again.
- pending for longer than ANSWER_PENDING_DEADLINE: no worker took it. Fail it.
- streaming for longer than ANSWER_MAX_SECONDS: raise the abort flag and fail it (the
  Celery thread pool enforces no time limit).

It runs on a thread of every web process (StartWatchdogMiddleware), one pass per
WATCHDOG_INTERVAL; a short Redis lock lets only one process do a given pass. The Celery
beat entry `ops.answers_sweep` runs the same pass for deployments that prefer it there.
Failing is idempotent (message_generation_fail skips final answers), so two passes
racing cannot fail an answer twice, and a task redelivered later for a failed answer
does nothing (inference/runner.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from assistant.models import Message
from assistant.services import message_generation_fail
from inference import aborts
from inference.liveness import leases_held, redis_client
from inference.runner import EventStream

from . import metrics

logger = logging.getLogger(__name__)

LOCK_KEY = "glimpse:watchdog:lock"
MISSING_KEY = "glimpse:lease-missing:{}"

WORKER_LOST_MESSAGE = "The assistant stopped answering (its worker went away). Please ask again."
PENDING_MESSAGE = "No assistant was free to answer in time. Please ask again."
TOO_LONG_MESSAGE = "The answer took too long and was stopped. Please ask again."


def answers_sweep() -> dict[str, int]:
    """One pass; returns how many answers it failed, by reason."""
    failed = {"worker_lost": 0, "pending_timeout": 0, "too_long": 0}
    if settings.INFERENCE_MODE != "celery":
        return failed
    now = timezone.now()
    unfinished = list(
        Message.objects.filter(
            role=Message.Role.ASSISTANT,
            status__in=Message.UNFINISHED_STATUSES,
        ).values_list("pk", "status", "created_at", "started_at")
    )
    pending_cutoff = now - timedelta(seconds=settings.ANSWER_PENDING_DEADLINE)
    too_long_cutoff = now - timedelta(seconds=settings.ANSWER_MAX_SECONDS)
    streaming = []
    for pk, status, created_at, started_at in unfinished:
        if status == Message.Status.PENDING:
            if created_at < pending_cutoff and _fail(pk, PENDING_MESSAGE, "pending_timeout"):
                failed["pending_timeout"] += 1
        elif started_at and started_at < too_long_cutoff:
            try:
                aborts.request_abort(pk)
            except Exception:
                logger.warning("could not raise the abort flag for message %s", pk)
            if _fail(pk, TOO_LONG_MESSAGE, "too_long"):
                failed["too_long"] += 1
        else:
            streaming.append(pk)
    failed["worker_lost"] = _sweep_leases(streaming)
    return failed


def _sweep_leases(message_ids: list[int]) -> int:
    if not message_ids:
        return 0
    held = leases_held(message_ids)
    client = redis_client()
    grace_ms = int(settings.ANSWER_LEASE_TTL * 1000)
    now_ms = int(time.time() * 1000)
    failed = 0
    pipe = client.pipeline(transaction=False)
    for message_id, has_lease in held.items():
        key = MISSING_KEY.format(message_id)
        if has_lease:
            pipe.delete(key)
        else:
            # Remember when the lease was first seen missing (kept in Redis so whichever
            # web process runs the next pass knows it too).
            pipe.set(key, now_ms, nx=True, ex=max(60, 10 * int(settings.ANSWER_LEASE_TTL)))
            pipe.get(key)
    results = iter(pipe.execute())
    for message_id, has_lease in held.items():
        next(results)
        if has_lease:
            continue
        first_missing = int(next(results) or now_ms)
        if now_ms - first_missing >= grace_ms:
            if _fail(message_id, WORKER_LOST_MESSAGE, "worker_lost"):
                failed += 1
            client.delete(MISSING_KEY.format(message_id))
    return failed


def _fail(message_id: int, message: str, reason: str) -> bool:
    # Marked failed only if still not final; the error event reaches every open socket
    # of the conversation.
    answer = message_generation_fail(message_id=message_id, error=message, code=reason)
    if answer is None:
        return False
    EventStream(answer.conversation.group_name, message_id).emit(
        "error", message=message, code=reason
    )
    metrics.watchdog_failed(reason)
    logger.warning("watchdog failed message %s: %s", message_id, reason)
    return True


def _take_turn(owner: str) -> bool:
    interval_ms = max(100, int(settings.WATCHDOG_INTERVAL * 1000 * 0.9))
    return bool(redis_client().set(LOCK_KEY, owner, nx=True, px=interval_ms))


def _loop() -> None:
    owner = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        time.sleep(settings.WATCHDOG_INTERVAL)
        try:
            if _take_turn(owner):
                answers_sweep()
        except Exception:
            # Database or Redis away: try again next tick, never die.
            logger.warning("watchdog pass failed; retrying", exc_info=True)
        finally:
            close_old_connections()


_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def start_watchdog_thread() -> None:
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="glimpse-watchdog", daemon=True)
            _thread.start()
