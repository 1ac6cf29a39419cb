"""What crosses the engine boundary: requests in, events out.

Plain dataclasses with no Django and no torch, so the web process, the Celery task and
the GPU worker all agree on one vocabulary. Events serialise to small JSON dicts because
in production they travel over Redis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]

# Limits applied to every request, whoever sends it: a partner cannot ask for a
# 100k-token answer or a temperature that turns output into noise.
MAX_NEW_TOKENS_LIMIT = 4096
DEFAULT_MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    text: str
    # Absolute path of the model-ready copy of the screenshot (already sanitised and
    # downscaled by the web side). None for a text-only turn.
    image_path: str | None = None
    # Size of the original screenshot, so grounding boxes can be mapped back to it.
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    thinking: bool = False

    def clamped(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=max(1, min(int(self.max_new_tokens), MAX_NEW_TOKENS_LIMIT)),
            temperature=max(0.0, min(float(self.temperature), 2.0)),
            top_p=max(0.01, min(float(self.top_p), 1.0)),
            stop=tuple(s for s in self.stop if s)[:4],
            thinking=bool(self.thinking),
        )


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str  # the assistant message id, as a string: unique and idempotent
    turns: tuple[ChatTurn, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)

    @property
    def last_image(self) -> ChatTurn | None:
        for turn in reversed(self.turns):
            if turn.image_path:
                return turn
        return None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


# --- events an engine yields, in order: Token*/Box* then exactly one Done or Error ---


@dataclass(frozen=True)
class Token:
    text: str
    type: str = "token"


@dataclass(frozen=True)
class Box:
    """A grounding box in pixels of the original screenshot (x1, y1, x2, y2)."""

    x1: int
    y1: int
    x2: int
    y2: int
    label: str = ""
    type: str = "box"


@dataclass(frozen=True)
class Done:
    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: Literal["stop", "length", "abort"] = "stop"
    engine: str = ""
    type: str = "done"


@dataclass(frozen=True)
class Error:
    message: str  # safe to show to an end user: no traceback, no paths
    code: str = "engine_error"
    type: str = "error"


EngineEvent = Token | Box | Done | Error


def event_to_dict(event: EngineEvent) -> dict:
    return asdict(event)


class EngineUnavailable(Exception):
    """The engine cannot take this request (not loaded, overloaded, shutting down)."""

    def __init__(self, message: str, *, code: str = "engine_unavailable"):
        super().__init__(message)
        self.code = code
