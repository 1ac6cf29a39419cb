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
            max_seq_len=settings.INFERENCE_MAX_SEQ_LEN,
            prefill_batch=settings.INFERENCE_PREFILL_BATCH,
            prefill_group_tokens=settings.INFERENCE_PREFILL_TOKENS,
        )
    if kind == "fixedrate":
        from .fixedrate import build_fixedrate_engine

        return build_fixedrate_engine(settings)
    raise EngineUnavailable(f"Unknown INFERENCE_ENGINE {kind!r}: use 'lite', 'vlm' or 'fixedrate'.")


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


_fallback: Engine | None = None


def get_fallback_engine() -> Engine:
    """The engine that answers when the main one is saturated (LITE_FALLBACK=1): the lite
    engine by default, loaded in this process on first use. Raises EngineUnavailable."""
    global _fallback
    if _fallback is not None:
        return _fallback
    if settings.LITE_FALLBACK_ENGINE == settings.INFERENCE_ENGINE and _engine is not None:
        return _engine  # the same kind already loaded here: no second copy in memory
    with _engine_lock:
        if _fallback is None:
            engine = _build(settings.LITE_FALLBACK_ENGINE)
            engine.load()
            _fallback = engine
    return _fallback
