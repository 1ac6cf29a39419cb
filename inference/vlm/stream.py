"""Turning one request's generated token ids into events.

Three jobs, in this order, for every new token:
1. incremental detokenisation: decode a small window of recent ids and emit only what is
   new and complete, so a CJK character or emoji spread over several byte-level tokens is
   never sent half-made (no U+FFFD in the stream);
2. stop strings: text that could be the start of a stop string is held back until it is
   clearly not one; on a match the answer ends before it;
3. grounding boxes: `inference.boxes` removes the markup and yields Box events.
"""

from __future__ import annotations

from typing import Any

from ..boxes import BoxStreamParser
from ..types import Box, Token

REPLACEMENT = "\ufffd"
# A UTF-8 character is at most 4 bytes, so a byte-level tokenizer completes one within 4
# tokens; more pending tokens than this means they decode to nothing and never will.
MAX_PENDING_IDS = 8


class IncrementalDetokenizer:
    """Decode token ids to text piece by piece (the prefix/read offset method)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        # The Rust tokenizer behind a fast tokenizer decodes in microseconds; the Python
        # wrapper costs about 0.2 ms a call, which at 32 streams and two calls per token
        # was half of every decode step.
        self._rust = getattr(tokenizer, "_tokenizer", None)
        self.ids: list[int] = []
        self.prefix = 0  # start of the window decoded for context
        self.read = 0  # end of what has already been emitted

    def _decode(self, ids: list[int]) -> str:
        # Special tokens stay: the box markers are special tokens in GLM's vocabulary.
        if not ids:
            return ""
        if self._rust is not None:
            return self._rust.decode(ids, skip_special_tokens=False)
        return self.tokenizer.decode(
            ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        if len(self.ids) - self.read > MAX_PENDING_IDS:
            # Tokens that decode to nothing (or bytes that never complete a character)
            # must not make every later step re-decode an ever longer window.
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is left at the end (a truly invalid byte sequence shows as U+FFFD)."""
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :] if len(after) > len(before) else ""


class StopStrings:
    """Hold back text that might begin a stop string; report a match."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to emit, whether a stop string was hit)."""
        if not self.stops:
            return text, False
        self.pending += text
        hit = min((i for i in (self.pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if hit >= 0:
            out, self.pending = self.pending[:hit], ""
            return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if stop.startswith(self.pending[-n:]):
                    keep = max(keep, n)
                    break
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class OutputStream:
    """Per-request text pipeline: ids in, (Token|Box events, stop hit) out."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        stop: tuple[str, ...] = (),
        image_size: tuple[int, int] | None = None,
    ):
        self.detok = IncrementalDetokenizer(tokenizer)
        self.stops = StopStrings(stop)
        self.boxes = BoxStreamParser(image_size)
        self.text_parts: list[str] = []

    def _events(self, text: str, final: bool = False) -> list[Token | Box]:
        clean, boxes = self.boxes.feed(text) if text else ("", [])
        if final:
            tail, more = self.boxes.finish()
            clean, boxes = clean + tail, boxes + more
        events: list[Token | Box] = []
        if clean:
            self.text_parts.append(clean)
            events.append(Token(text=clean))
        events.extend(boxes)
        return events

    def push(self, token_id: int) -> tuple[list[Token | Box], bool]:
        piece = self.detok.push(token_id)
        if not piece:
            return [], False
        safe, stopped = self.stops.feed(piece)
        return self._events(safe, final=stopped), stopped

    def finish(self, *, stopped_by_string: bool = False) -> list[Token | Box]:
        """End of generation: flush held-back text (unless a stop string cut it off)."""
        if stopped_by_string:
            return []
        text = self.detok.flush()
        safe, stopped = self.stops.feed(text) if text else ("", False)
        if not stopped:
            safe += self.stops.flush()
        return self._events(safe, final=True)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)
