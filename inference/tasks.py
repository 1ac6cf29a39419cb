"""Celery tasks run by GPU workers (docs/deploy.md): they take ids and call the runner."""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from .liveness import liveness
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


def _consumes_inference(consumer) -> bool:
    try:
        return "inference" in {queue.name for queue in consumer.task_consumer.queues}
    except AttributeError:
        return True


@worker_ready.connect
def load_engine_at_start(sender=None, **kwargs) -> None:
    # A CPU worker on other queues (`ops`, beat's sweeps) has no engine to load or report.
    if not _consumes_inference(sender):
        return
    # Heartbeats start first: they are only written once the engine is loaded, so
    # /readyz turns ready exactly when this worker can answer.
    liveness.start(node=getattr(sender, "hostname", None), heartbeat=True)
    # A GPU worker loads its model once, before it takes the first task, so the first
    # user does not wait for weights to load.
    if settings.INFERENCE_WARMUP:
        try:
            get_engine()
        except EngineUnavailable as exc:
            logger.error("engine could not be loaded: %s", exc)
