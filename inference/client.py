"""What the web side calls to reach the engine: submit, abort, health. Never torch.

In the embedded mode the engine lives on threads of this process; with
INFERENCE_MODE=celery each answer becomes a task on the `inference` queue.
"""

from __future__ import annotations

import logging

from django.conf import settings

from . import aborts
from .types import EngineUnavailable

logger = logging.getLogger(__name__)

# Where an admitted answer goes: the configured engine, or the lite fallback.
ROUTE_ENGINE = "engine"
ROUTE_FALLBACK = "fallback"

OVERLOADED_MESSAGE = "The assistant is busy right now. Please try again in a few seconds."
UNREACHABLE_MESSAGE = "The assistant cannot be reached right now. Please try again shortly."


class EngineOverloaded(EngineUnavailable):
    """Refused before anything was written; `retry_after` is in seconds (Retry-After)."""

    def __init__(self, message: str, *, code: str = "overloaded", retry_after: int = 5):
        super().__init__(message, code=code)
        self.retry_after = retry_after


def _celery() -> bool:
    return settings.INFERENCE_MODE == "celery"


def admission_check() -> str:
    """Whether a new answer can be taken now, decided before anything is written.

    Returns the route to pass to `submit`. Raises EngineOverloaded (an EngineUnavailable,
    code "overloaded", or "engine_unavailable" when the queue cannot be reached) when the
    engine is saturated and no fallback has room: answer 503 with Retry-After. Callers:
    assistant.services.message_ask (chat and anything built on it) and the REST API."""
    from ops import metrics

    retry_after = settings.OVERLOAD_RETRY_AFTER
    try:
        saturated = _celery_saturated() if _celery() else _embedded_saturated()
    except Exception:
        logger.warning("could not read the inference queue", exc_info=True)
        metrics.admission("unreachable")
        raise EngineOverloaded(
            UNREACHABLE_MESSAGE, code="engine_unavailable", retry_after=retry_after
        ) from None
    if not saturated:
        metrics.admission("admitted")
        return ROUTE_ENGINE
    if settings.LITE_FALLBACK:
        from .embedded import fallback_host

        if not fallback_host().saturated():
            metrics.admission("fallback")
            return ROUTE_FALLBACK
    metrics.admission("overloaded")
    raise EngineOverloaded(OVERLOADED_MESSAGE, retry_after=retry_after)


def _embedded_saturated() -> bool:
    from .embedded import host

    return host().saturated()


def _celery_saturated() -> bool:
    return queue_depth() >= settings.INFERENCE_QUEUE_LIMIT


def queue_depth() -> int:
    """Answers waiting for an engine: tasks in the `inference` queue (celery) or answers
    queued behind the pool (embedded)."""
    if not _celery():
        from .embedded import host

        return host().waiting()
    from .liveness import redis_client

    # Kombu keeps a Redis queue as a list named after it (priorities would add suffixes;
    # these tasks are sent without one).
    return int(redis_client().llen("inference"))


def submit(message_id: int, *, route: str = ROUTE_ENGINE) -> None:
    """Hand an answer to the engine. Called on commit of the question."""
    try:
        if route == ROUTE_FALLBACK:
            from .embedded import fallback_host

            fallback_host().submit(message_id)
        elif _celery():
            # The project's Celery app (broker = REDIS_URL) must exist before the task is
            # sent; otherwise the shared task falls back to Celery's default app, whose
            # broker is amqp://localhost, and the send hangs retrying.
            import glimpse.celery  # noqa: F401

            from .tasks import generate_answer

            generate_answer.apply_async(args=[message_id], queue="inference")
        else:
            from .embedded import host

            host().submit(message_id)
    except Exception:
        # The question is stored; without an engine the answer must end failed, visibly,
        # rather than wait forever.
        logger.exception("could not hand message %s to the engine", message_id)
        from .runner import UNAVAILABLE_MESSAGE, fail_message

        fail_message(message_id, UNAVAILABLE_MESSAGE, "engine_unavailable")


def abort(message_id: int) -> None:
    try:
        aborts.request_abort(message_id)
    except Exception:
        logger.warning("could not raise the abort flag for message %s", message_id, exc_info=True)
    if not _celery():
        from .embedded import host

        host().abort(message_id)


def health() -> dict:
    if _celery():
        return {"mode": "celery", "queue": "inference"}
    from .embedded import host

    return host().health()
