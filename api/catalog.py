"""Which model this server runs, as the OpenAI-compatible endpoints name it."""

from __future__ import annotations

from django.conf import settings


def served_model_id() -> str:
    # The VLM engine serves MODEL_ID (a hub id or a local folder); other engines (the
    # lite OCR + SmolLM2 engine) are named by their engine name, as answers record it.
    if settings.INFERENCE_ENGINE == "vlm":
        return settings.MODEL_ID
    return settings.INFERENCE_ENGINE


def served_models() -> list[dict]:
    return [{"id": served_model_id(), "object": "model", "created": 0, "owned_by": "glimpse"}]
