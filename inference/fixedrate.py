"""An engine that writes at a fixed, known rate: the yardstick for load and fault tests.

It follows the Engine contract (inference/engine.py) like the real engines do, so the
runner, the Celery task, the channel layer and the websocket see ordinary traffic, but
its cost is a sleep rather than a GPU: what a load test then measures is what the
platform adds. Select it with INFERENCE_ENGINE=fixedrate.

With `stamp=True` every token carries the wall-clock time at which it was emitted,
written in letters (digits could be taken for a phone number by the streaming PII
redactor), so a client on the same machine can measure the relay latency of each chunk
with `decode_stamp`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from .types import Done, EngineEvent, EngineUnavailable, GenerationRequest, Token, Usage

_WORDS = (
    "This is a fixed-rate answer from the test engine: it writes one token at a time, "
    "at the pace it was told, so that what a measurement sees is the platform around it."
).split()

# Stamps: microseconds since the epoch in base 26, "a" = 0 (12 letters reach year 5000+).
_STAMP_WIDTH = 12
_STAMP_PREFIX = "ts"


def encode_stamp(seconds: float) -> str:
    value = int(seconds * 1_000_000)
    letters = []
    for _ in range(_STAMP_WIDTH):
        value, digit = divmod(value, 26)
        letters.append(chr(ord("a") + digit))
    return _STAMP_PREFIX + "".join(reversed(letters))


def decode_stamp(word: str) -> float | None:
    """Seconds since the epoch from a stamp word, or None when it is not one."""
    word = word.strip()
    if len(word) != len(_STAMP_PREFIX) + _STAMP_WIDTH or not word.startswith(_STAMP_PREFIX):
        return None
    value = 0
    for char in word[len(_STAMP_PREFIX) :]:
        if not "a" <= char <= "z":
            return None
        value = value * 26 + (ord(char) - ord("a"))
    return value / 1_000_000


class FixedRateEngine:
    name = "fixedrate"
    model_name = "fixedrate"

    def __init__(
        self,
        *,
        tokens_per_second: float = 20.0,
        first_token_delay: float = 0.0,
        answer_tokens: int = 32,
        max_batch: int = 32,
        stamp: bool = False,
        load_seconds: float = 0.0,
    ):
        if tokens_per_second <= 0:
            raise EngineUnavailable("FIXEDRATE_TOKENS_PER_SECOND must be above 0.")
        self.interval = 1.0 / tokens_per_second
        self.first_token_delay = max(0.0, first_token_delay)
        self.answer_tokens = max(1, answer_tokens)
        self.max_batch = max(1, max_batch)
        self.stamp = stamp
        self.load_seconds = load_seconds
        self._loaded = False
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._aborted: set[str] = set()

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
        # Stands in for reading weights: fault tests use it to catch a worker that has
        # taken a task but not started the answer.
        if self.load_seconds:
            time.sleep(self.load_seconds)
        with self._lock:
            self._loaded = True

    def generate(self, request: GenerationRequest) -> Iterator[EngineEvent]:
        # Admission happens here, before the generator starts, so a full engine raises
        # EngineUnavailable to the caller instead of yielding an Error later.
        with self._lock:
            if not self._loaded:
                raise EngineUnavailable("The fixed-rate engine is not loaded.")
            if len(self._active) >= self.max_batch:
                raise EngineUnavailable("The engine is at capacity.", code="overloaded")
            self._active.add(request.request_id)
            self._aborted.discard(request.request_id)
        return self._stream(request)

    def _stream(self, request: GenerationRequest) -> Iterator[EngineEvent]:
        request_id = request.request_id
        try:
            limit = min(self.answer_tokens, request.sampling.max_new_tokens)
            finish_reason = "length" if limit < self.answer_tokens else "stop"
            prompt_tokens = sum(len(turn.text.split()) for turn in request.turns)
            due = time.monotonic() + self.first_token_delay
            pieces: list[str] = []
            for index in range(limit):
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # The next step starts from this one, like a model's decode step: a late
                # wake-up does not turn into a burst of catch-up tokens.
                due = max(due, time.monotonic()) + self.interval
                if request_id in self._aborted:
                    finish_reason = "abort"
                    break
                if self.stamp:
                    # A trailing space ends the word, so the streaming PII redactor (which
                    # holds back an unfinished last word) releases it at once: the relay
                    # figure is then the platform's, not the hold-back's.
                    piece = encode_stamp(time.time()) + " "
                else:
                    word = _WORDS[index % len(_WORDS)]
                    piece = word if index == 0 else " " + word
                pieces.append(piece)
                yield Token(piece)
            yield Done(
                text="".join(pieces),
                usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(pieces)),
                finish_reason=finish_reason,
                engine=self.name,
            )
        finally:
            with self._lock:
                self._active.discard(request_id)
                self._aborted.discard(request_id)

    def abort(self, request_id: str) -> None:
        with self._lock:
            if request_id in self._active:
                self._aborted.add(request_id)

    def health(self) -> dict:
        with self._lock:
            return {
                "ok": self._loaded,
                "engine": self.name,
                "model": "fixedrate",
                "active": len(self._active),
                "max_batch": self.max_batch,
                "tokens_per_second": round(1.0 / self.interval, 3),
            }


def build_fixedrate_engine(settings) -> FixedRateEngine:
    return FixedRateEngine(
        tokens_per_second=settings.FIXEDRATE_TOKENS_PER_SECOND,
        first_token_delay=settings.FIXEDRATE_FIRST_TOKEN_MS / 1000.0,
        answer_tokens=settings.FIXEDRATE_ANSWER_TOKENS,
        max_batch=settings.INFERENCE_MAX_BATCH,
        stamp=settings.FIXEDRATE_STAMP,
        load_seconds=settings.FIXEDRATE_LOAD_SECONDS,
    )
