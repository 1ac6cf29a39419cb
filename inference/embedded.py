"""The embedded default: the engine runs on a thread pool inside the server process.

Each pool thread runs one answer through the same runner a Celery worker uses. The pool
size bounds how many answers are generated at once; the engine itself decides how to
share the model between them.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

from . import worker
from .runner import UNAVAILABLE_MESSAGE, fail_message, run_generation
from .types import EngineUnavailable

logger = logging.getLogger(__name__)


class EmbeddedHost:
    def __init__(self, concurrency: int):
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="glimpse-engine"
        )
        self.load_error: str | None = None

    def warm_up(self) -> None:
        self._pool.submit(self._engine)

    def _engine(self):
        try:
            engine = worker.get_engine()
            self.load_error = None
            return engine
        except EngineUnavailable as exc:
            self.load_error = str(exc)
            logger.error("engine could not be loaded: %s", exc)
            return None
        except Exception as exc:  # a broken install must not take the web server down
            self.load_error = f"The engine failed to load ({type(exc).__name__})."
            logger.exception("engine could not be loaded")
            return None

    def submit(self, message_id: int) -> None:
        self._pool.submit(self._run, message_id)

    def _run(self, message_id: int) -> None:
        engine = self._engine()
        if engine is None:
            try:
                fail_message(
                    message_id, self.load_error or UNAVAILABLE_MESSAGE, "engine_unavailable"
                )
            finally:
                connections.close_all()
            return
        run_generation(message_id, engine)

    def abort(self, message_id: int) -> None:
        engine = worker.loaded_engine()
        if engine is not None:
            engine.abort(str(message_id))

    def health(self) -> dict:
        engine = worker.loaded_engine()
        if engine is None:
            return {
                "ok": False,
                "mode": "embedded",
                "error": self.load_error or "engine not loaded yet",
            }
        return {"mode": "embedded", **engine.health()}


_host: EmbeddedHost | None = None
_host_lock = threading.Lock()


def host() -> EmbeddedHost:
    global _host
    with _host_lock:
        if _host is None:
            _host = EmbeddedHost(settings.EMBEDDED_CONCURRENCY)
        return _host
