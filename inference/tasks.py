"""Celery tasks run by GPU workers (docs/deploy.md): they take ids and call the runner."""

from celery import shared_task

from .runner import fail_message, run_generation
from .types import EngineUnavailable
from .worker import get_engine


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
