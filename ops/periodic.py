"""Periodic maintenance for the embedded mode, which runs no Celery beat.

With Celery, beat schedules the retention purge and the safety sweep on the `ops` queue
(CELERY_BEAT_SCHEDULE). The embedded default has no beat and no worker, so the web
process starts a thread (`start_periodic_thread`, from inference.startup) that calls
`run_due()` every minute, and the jobs run here on the same intervals. Each job's next run is kept in memory: a restart runs them once at start,
which is harmless (both only remove what has expired).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

CHECK_SECONDS = 60.0
_next_run: dict[str, float] = {}
_thread: threading.Thread | None = None


def _jobs() -> list[tuple[str, float, object]]:
    from audit.retention import purge_expired
    from policy.tasks import unredacted_copies_sweep

    return [
        ("retention-purge", settings.RETENTION_PURGE_INTERVAL, purge_expired),
        ("safety-sweep", settings.SAFETY_SWEEP_INTERVAL, unredacted_copies_sweep),
    ]


def run_due(now: float | None = None) -> list[str]:
    """Run the jobs whose time has come (embedded mode only); returns their names."""
    if settings.INFERENCE_MODE != "embedded":
        return []
    now = time.monotonic() if now is None else now
    ran = []
    for name, interval, job in _jobs():
        if interval <= 0 or now < _next_run.get(name, 0.0):
            continue
        _next_run[name] = now + interval
        try:
            job()
            ran.append(name)
        except Exception:
            logger.warning(
                "periodic job %s failed; next try in %.0f s", name, interval, exc_info=True
            )
    return ran


def _loop() -> None:
    from django.db import close_old_connections

    while True:
        try:
            run_due()
        finally:
            close_old_connections()
        time.sleep(CHECK_SECONDS)


def start_periodic_thread() -> None:
    global _thread
    if _thread is None or not _thread.is_alive():
        _thread = threading.Thread(target=_loop, name="glimpse-periodic", daemon=True)
        _thread.start()
