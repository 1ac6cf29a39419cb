"""What the web side calls to reach the engine: submit, abort, health. Never torch.

In the embedded mode the engine lives on threads of this process; with
INFERENCE_MODE=celery each answer becomes a task on the `inference` queue.
"""

from __future__ import annotations

import logging

from django.conf import settings

from . import aborts

logger = logging.getLogger(__name__)


def _celery() -> bool:
    return settings.INFERENCE_MODE == "celery"


def submit(message_id: int) -> None:
    """Hand an answer to the engine. Called on commit of the question."""
    try:
        if _celery():
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
