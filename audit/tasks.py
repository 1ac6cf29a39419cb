"""Periodic work of the audit app, scheduled by Celery beat (CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from .retention import purge_expired


@shared_task(name="audit.retention_purge", ignore_result=True)
def retention_purge() -> dict:
    return purge_expired().as_dict()
