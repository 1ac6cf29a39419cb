"""The embedded default: the engine runs on a thread pool inside the server process.

Each pool thread runs one answer through the same runner a Celery worker uses. The pool
size bounds how many answers are generated at once; the engine itself decides how to
share the model between them.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from django.conf import settings
from django.db import connections

from . import worker
from .runner import UNAVAILABLE_MESSAGE, fail_message, run_generation
from .types import Done, EngineUnavailable

logger = logging.getLogger(__name__)


class EmbeddedHost:
    def __init__(self, concurrency: int, *, queue_limit: int = 16, get_engine=None):
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="glimpse-engine"
        )
        self.load_error: str | None = None
        self._get_engine = get_engine or worker.get_engine
        # The pool's own queue is unbounded: count what was handed to it, so admission
        # can refuse before a question is even written (inference.client.admission_check).
        self.concurrency = concurrency
        self.capacity = concurrency + max(0, queue_limit)
        self._count_lock = threading.Lock()
        self._in_system = 0

    def saturated(self) -> bool:
        return self._in_system >= self.capacity

    def waiting(self) -> int:
        return max(0, self._in_system - self.concurrency)

    def warm_up(self) -> None:
        self._pool.submit(self._engine)

    def _engine(self):
        try:
            engine = self._get_engine()
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
        with self._count_lock:
            self._in_system += 1
        try:
            self._pool.submit(self._run, message_id)
        except BaseException:
            self._left()
            raise

    def _left(self) -> None:
        with self._count_lock:
            self._in_system -= 1

    def _run(self, message_id: int) -> None:
        try:
            self._run_one(message_id)
        finally:
            self._left()

    def _run_one(self, message_id: int) -> None:
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
            _host = EmbeddedHost(
                settings.EMBEDDED_CONCURRENCY, queue_limit=settings.EMBEDDED_QUEUE_LIMIT
            )
        return _host


class FallbackEngine:
    """The lite engine answering for a saturated main engine, marked as such: the answer's
    engine is "lite (fallback)", so users and reviewers can tell."""

    def __init__(self, engine):
        self._engine = engine
        self.name = f"{engine.name} (fallback)"

    def load(self) -> None:
        self._engine.load()

    def generate(self, request):
        # Called eagerly so a refusal (EngineUnavailable) reaches the runner at once.
        return self._marked(self._engine.generate(request))

    def _marked(self, events):
        for event in events:
            if isinstance(event, Done):
                event = replace(event, engine=self.name)
            yield event

    def abort(self, request_id: str) -> None:
        self._engine.abort(request_id)

    def health(self) -> dict:
        return {**self._engine.health(), "engine": self.name}


_fallback_host: EmbeddedHost | None = None


def fallback_host() -> EmbeddedHost:
    """A small pool of its own, so fallback answers never queue behind the main engine."""
    global _fallback_host
    with _host_lock:
        if _fallback_host is None:
            concurrency = max(1, settings.LITE_FALLBACK_CONCURRENCY)
            _fallback_host = EmbeddedHost(
                concurrency,
                queue_limit=concurrency,
                get_engine=lambda: FallbackEngine(worker.get_fallback_engine()),
            )
        return _fallback_host
