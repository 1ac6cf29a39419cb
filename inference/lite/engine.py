"""`LiteEngine`: the Engine protocol on two CPU cores, no GPU and no network.

Pipeline per request: OCR the last screenshot -> structured reading -> the facts that
answer the last user question (or "cannot answer") -> Box events for the lines behind
the answer -> the answer streamed as Token events (SmolLM2 wording under a guard, or the
deterministic template) -> one Done. Problems with a request become an Error event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..types import (
    Box,
    ChatTurn,
    Done,
    EngineEvent,
    EngineUnavailable,
    Error,
    GenerationRequest,
    Token,
    Usage,
)
from .answer import Answer, answer_question, needs_screenshot
from .ocr import ScreenOcr, get_ocr
from .phrasing import Phraser, PhraseStats
from .reading import read_screen

log = logging.getLogger(__name__)

# Aborts that arrive before their request starts are remembered this long (and at most
# this many), so a quick "stop" is not lost to a race with the worker thread.
_EARLY_ABORT_TTL_S = 300.0
_EARLY_ABORT_MAX = 1000


class LiteEngine:
    name = "lite"

    @property
    def model_name(self) -> str:
        # The reading decides the facts; the phraser (or templates, when it could not
        # load) words them.
        phraser = "SmolLM2-135M-Instruct" if self.phraser.loaded else "templates"
        return f"PP-OCRv4 + {phraser}"

    def __init__(self, cache_dir: str | Path, *, gguf_path: str | Path | None = None,
                 use_model: bool = True):  # fmt: skip
        self.phraser = Phraser(cache_dir, gguf_path=gguf_path)
        self.use_model = use_model
        self._ocr: ScreenOcr | None = None
        self._phraser_error = ""
        self._load_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._active: dict[str, threading.Event] = {}
        self._early_aborts: OrderedDict[str, float] = OrderedDict()
        self.last_stats: PhraseStats | None = None  # of the latest request, for benchmarks

    # --- lifecycle ---

    def load(self) -> None:
        with self._load_lock:
            if self._ocr is None:
                try:
                    ocr = get_ocr()
                    ocr.read(np.full((32, 64, 3), 255, dtype=np.uint8))  # warm the sessions
                except Exception as exc:  # the engine is useless without OCR
                    log.exception("lite engine: OCR failed to load")
                    raise EngineUnavailable(
                        "The offline engine could not start its text recogniser."
                    ) from exc
                self._ocr = ocr
            if self.use_model and not self.phraser.loaded and not self._phraser_error:
                try:
                    self.phraser.load()
                    self._warm_up()
                except Exception as exc:
                    # Answers stay correct without the model: they are the templates.
                    self._phraser_error = f"{type(exc).__name__}: {exc}"
                    log.warning("lite engine: SmolLM2 unavailable, using templates (%s)", exc)

    def _warm_up(self) -> None:
        # The first forward pass pays one-off allocation costs; pay them at load time, not
        # in the first user's time to first token.
        warm = Answer("answer", "en", "The total is $1.00.", intent="field", required=["$1.00"])
        for _ in self.phraser.stream("What is the total?", warm):
            pass

    def health(self) -> dict:
        with self._state_lock:
            active = len(self._active)
        return {
            "ok": self._ocr is not None,
            "engine": self.name,
            "loaded": self._ocr is not None,
            "ocr": "PP-OCRv4 (rapidocr-onnxruntime)",
            "phraser": "SmolLM2-135M-Instruct" if self.phraser.loaded else "templates",
            "phraser_error": self._phraser_error,
            "active": active,
        }

    # --- aborts ---

    def abort(self, request_id: str) -> None:
        with self._state_lock:
            event = self._active.get(request_id)
            if event is not None:
                event.set()
                return
            now = time.monotonic()
            self._early_aborts[request_id] = now
            while self._early_aborts and (
                len(self._early_aborts) > _EARLY_ABORT_MAX
                or now - next(iter(self._early_aborts.values())) > _EARLY_ABORT_TTL_S
            ):
                self._early_aborts.popitem(last=False)

    def _register(self, request_id: str) -> threading.Event:
        event = threading.Event()
        with self._state_lock:
            if self._early_aborts.pop(request_id, None) is not None:
                event.set()
            self._active[request_id] = event
        return event

    def _unregister(self, request_id: str, event: threading.Event) -> None:
        with self._state_lock:
            if self._active.get(request_id) is event:
                del self._active[request_id]

    # --- generation ---

    def generate(self, request: GenerationRequest) -> Iterator[EngineEvent]:
        if self._ocr is None:
            self.load()  # raises EngineUnavailable: the request is not admitted
        stop = self._register(request.request_id)
        try:
            yield from self._generate(request, stop)
        finally:
            self._unregister(request.request_id, stop)

    def _generate(self, request: GenerationRequest, stop: threading.Event) -> Iterator[EngineEvent]:
        sampling = request.sampling.clamped()
        question = _last_user_text(request.turns)
        image_turn = request.last_image
        if stop.is_set():
            yield Done(text="", finish_reason="abort", engine=self.name)
            return
        if image_turn is None:
            answer = needs_screenshot(question)
        else:
            try:
                image = _load_image(image_turn.image_path)
            except Exception:
                log.warning("lite engine: cannot open %s", image_turn.image_path, exc_info=True)
                yield Error("The screenshot could not be opened.", code="bad_image")
                return
            try:
                lines = self._ocr.read(image)
                reading = read_screen(lines, image)
                answer = answer_question(question, reading)
            except Exception:
                log.exception("lite engine: reading the screenshot failed")
                yield Error("The offline engine could not read this screenshot.")
                return
            if stop.is_set():
                yield Done(text="", finish_reason="abort", engine=self.name)
                return
            yield from _boxes(answer, image_turn, image.shape[1], image.shape[0])

        stats = PhraseStats()
        self.last_stats = stats
        text, finish, count = "", "stop", 0
        try:
            for piece in self.phraser.stream(
                question, answer, should_stop=stop.is_set, stats=stats
            ):
                cut = _stop_index(text + piece, sampling.stop)
                if cut is not None:
                    piece = (text + piece)[len(text) : cut]
                if piece:
                    text += piece
                    count += 1
                    yield Token(piece)
                if cut is not None:
                    break
                if count >= sampling.max_new_tokens:
                    finish = "length"
                    break
        except Exception:
            log.exception("lite engine: phrasing failed")
            yield Error("The offline engine failed while writing the answer.")
            return
        if stop.is_set() or stats.finish == "abort":
            finish = "abort"
        usage = Usage(
            prompt_tokens=stats.prompt_tokens or self.phraser.count_tokens(question),
            completion_tokens=self.phraser.count_tokens(text) if text else 0,
        )
        yield Done(text=text, usage=usage, finish_reason=finish, engine=self.name)


def _last_user_text(turns: tuple[ChatTurn, ...]) -> str:
    for turn in reversed(turns):
        if turn.role == "user":
            return turn.text or ""
    return ""


def _load_image(path: str | None) -> np.ndarray:
    if not path:
        raise FileNotFoundError("no image path")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _boxes(answer: Answer, turn: ChatTurn, width: int, height: int) -> Iterator[Box]:
    """Grounding boxes, mapped from the (possibly downscaled) file to the original size."""
    ow, oh = turn.image_size or (width, height)
    sx, sy = ow / max(1, width), oh / max(1, height)
    seen = set()
    for (x1, y1, x2, y2), label in answer.grounding:
        box = (
            max(0, min(ow, round(x1 * sx))),
            max(0, min(oh, round(y1 * sy))),
            max(0, min(ow, round(x2 * sx))),
            max(0, min(oh, round(y2 * sy))),
        )
        if box in seen or box[2] <= box[0] or box[3] <= box[1]:
            continue
        seen.add(box)
        yield Box(*box, label=label)


def _stop_index(text: str, stops: tuple[str, ...]) -> int | None:
    found = [text.find(s) for s in stops if s and s in text]
    return min(found) if found else None


def build_lite_engine(cache_dir: str | Path, **options) -> LiteEngine:
    """The platform's factory: `cache_dir` holds the converted SmolLM2 (settings.DATA_DIR /
    "models" / "smollm2"). Loading is left to `load()` so startup stays fast."""
    return LiteEngine(cache_dir, **options)
