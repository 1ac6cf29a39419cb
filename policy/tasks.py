"""Periodic safety work, scheduled by Celery beat (CELERY_BEAT_SCHEDULE) on the `ops`
queue, and by the web process itself in the embedded mode (ops/periodic.py)."""

from celery import shared_task

from assistant.safety.pipeline import uploads_forget_stale_unredacted


def unredacted_copies_sweep() -> int:
    """Replace unredacted model copies older than UNREDACTED_IMAGE_TTL; returns how many."""
    total = 0
    while True:
        done = uploads_forget_stale_unredacted(limit=100)
        total += done
        if done < 100:
            return total


@shared_task(name="policy.safety_sweep", ignore_result=True)
def safety_sweep_task() -> int:
    return unredacted_copies_sweep()
