"""The process-wide engine: loaded once, shared by every request in this process.

This is the only web-importable module that reaches the torch side, and only inside
`load_engine`, which runs in the embedded engine thread or in a GPU worker.
"""

from __future__ import annotations

import threading

from django.conf import settings

from .engine import Engine
from .types import EngineUnavailable

_engine: Engine | None = None
_engine_lock = threading.Lock()


def _build(kind: str) -> Engine:
    if kind == "lite":
        from .lite.engine import build_lite_engine

        return build_lite_engine(settings.LITE_MODEL_CACHE)
    if kind == "vlm":
        from .vlm import build_vlm_engine

        return build_vlm_engine(
            settings.MODEL_ID,
            device=settings.INFERENCE_DEVICE or None,
            max_batch=settings.INFERENCE_MAX_BATCH,
        )
    raise EngineUnavailable(f"Unknown INFERENCE_ENGINE {kind!r}: use 'lite' or 'vlm'.")


def get_engine() -> Engine:
    """The loaded engine, loading it on first use. Raises EngineUnavailable."""
    global _engine
    if _engine is not None:
        return _engine
    with _engine_lock:
        if _engine is None:
            engine = _build(settings.INFERENCE_ENGINE)
            engine.load()
            _engine = engine
    return _engine


def loaded_engine() -> Engine | None:
    return _engine
