"""Celery beat's periodic work (CELERY_BEAT_SCHEDULE in glimpse/settings.py)."""

from celery import shared_task

from .watchdog import answers_sweep


@shared_task(name="ops.answers_sweep", ignore_result=True)
def answers_sweep_task() -> dict:
    # Same pass as the web processes' watchdog thread; safe to run beside it.
    return answers_sweep()
