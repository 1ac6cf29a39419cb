"""The worker-side engine contract.

An engine turns a GenerationRequest into a stream of events. Implementations live in
`inference.lite` (OCR + SmolLM2, CPU, the embedded default) and `inference.vlm`
(transformers image-text-to-text models, the GPU engine). Both may import torch; this
module must not, so that the web side can import the contract cheaply.

Threading contract: `generate` is called concurrently from several threads (one per
in-flight request: the embedded runner pool or Celery's thread pool). A batching engine
multiplexes those callers onto one model loop; a simple engine may serialise them.
`abort` may be called from any thread at any time, also for ids it never saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from .types import EngineEvent, GenerationRequest


@runtime_checkable
class Engine(Protocol):
    name: str
    # What answers are recorded as written by (a hub id or folder, or the parts of the lite
    # engine); read with getattr(engine, "model_name", engine.name).
    model_name: str

    def load(self) -> None:
        """Load weights; idempotent. Raises EngineUnavailable with a readable message."""

    def generate(self, request: GenerationRequest) -> Iterator[EngineEvent]:
        """Yield Token/Box events, then exactly one Done or Error. Never raises for a
        problem with this request (that becomes an Error event); raises
        EngineUnavailable only when the request could not be admitted at all."""

    def abort(self, request_id: str) -> None:
        """Stop generating for this request within a few steps; its stream then ends
        with Done(finish_reason="abort")."""

    def health(self) -> dict:
        """A small JSON-able dict: {"ok": bool, "engine": name, ...details}."""
