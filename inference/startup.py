"""What the embedded mode does when the server process starts."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import OperationalError, ProgrammingError, close_old_connections

logger = logging.getLogger(__name__)

RESTART_MESSAGE = "The server restarted while this answer was being written. Please ask again."


def embedded_startup() -> None:
    # In the embedded mode this process is the only engine: an answer still marked
    # pending or streaming was cut off by a restart and would otherwise never finish.
    from assistant.services import messages_fail_interrupted

    try:
        count = messages_fail_interrupted(error=RESTART_MESSAGE)
        if count:
            logger.warning("marked %d interrupted answers as failed", count)
    except (OperationalError, ProgrammingError):
        logger.warning("database not migrated yet; skipped recovering interrupted answers")
    finally:
        close_old_connections()
    # No Celery beat in this mode: the retention purge and the safety sweep run here.
    from ops.periodic import start_periodic_thread

    start_periodic_thread()
    if settings.INFERENCE_WARMUP:
        from .embedded import host

        host().warm_up()
