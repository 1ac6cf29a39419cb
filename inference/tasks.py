"""Celery tasks run by GPU workers (docs/deploy.md): they take ids and call the runner."""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from .runner import fail_message, run_generation
from .types import EngineUnavailable
from .worker import get_engine

logger = logging.getLogger(__name__)


@shared_task(name="inference.generate_answer", acks_late=True, ignore_result=True)
def generate_answer(message_id: int) -> None:
    # The runner is idempotent per message id, so a redelivered task after a worker
    # crash either finishes a never-started answer or does nothing.
    try:
        engine = get_engine()
    except EngineUnavailable as exc:
        fail_message(message_id, str(exc), exc.code)
        return
    run_generation(message_id, engine)


@worker_ready.connect
def load_engine_at_start(**kwargs) -> None:
    # A GPU worker loads its model once, before it takes the first task, so the first
    # user does not wait for weights to load.
    if settings.INFERENCE_WARMUP:
        try:
            get_engine()
        except EngineUnavailable as exc:
            logger.error("engine could not be loaded: %s", exc)
