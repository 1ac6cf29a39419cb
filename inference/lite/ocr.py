"""RapidOCR (PP-OCRv4, ONNX models shipped in the rapidocr-onnxruntime wheel) behind a
small, thread-safe wrapper that returns plain `OcrLine` values.

Everything downstream works on `OcrLine`, so the reading and answer logic can be unit
tested with hand-made lines and no OCR at all.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import cached_property

import numpy as np

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Everything that is not a letter, digit or CJK character is dropped by `normalise`.
_NOT_WORD = re.compile(r"[^0-9a-z\u3400-\u9fff\uf900-\ufaff]+")


def normalise(text: str) -> str:
    """A matching key: NFKC, lower case, no spaces and no punctuation.

    RapidOCR drops the spaces inside many Latin lines ("OrderID", "WadeWarren"), and a
    question may write "order A-1043" for the cell "#A-1043": comparing these keys makes
    both sides meet.
    """
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels of the image OCR saw
    score: float = 1.0

    @property
    def x1(self) -> int:
        return self.box[0]

    @property
    def y1(self) -> int:
        return self.box[1]

    @property
    def x2(self) -> int:
        return self.box[2]

    @property
    def y2(self) -> int:
        return self.box[3]

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @cached_property
    def norm(self) -> str:
        return normalise(self.text)


def lines_from_result(result: list | None, *, min_score: float = 0.5) -> list[OcrLine]:
    """Convert RapidOCR's `[[4 points], text, score]` triples into axis-aligned lines."""
    lines = []
    for points, text, score in result or ():
        text = unicodedata.normalize("NFKC", str(text)).strip()
        if not text or float(score) < min_score:
            continue
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        box = (int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys))))
        lines.append(OcrLine(text=text, box=box, score=float(score)))
    # Reading order: top to bottom, then left to right.
    lines.sort(key=lambda line: (line.y1, line.x1))
    return lines


# Advance widths (in ems) of a Helvetica-like sans-serif, to estimate where each character
# of a line sits; only used to place a space that the pixels say is missing.
_WIDTHS = dict(zip("abcdefghijklmnopqrstuvwxyz", (
    .556, .556, .5, .556, .556, .278, .556, .556, .222, .222, .5, .222, .833,
    .556, .556, .556, .556, .333, .5, .278, .556, .5, .722, .5, .5, .5,
), strict=True)) | dict.fromkeys("ABCDEFGHKNOPQRSTUVXYZ", 0.68) | dict.fromkeys("IJ", 0.3) | {
    "M": 0.83, "W": 0.94, "L": 0.556, " ": 0.278, ".": 0.278, ",": 0.278, ":": 0.278,
    ";": 0.278, "-": 0.333, "(": 0.333, ")": 0.333, "/": 0.278, "'": 0.19, "!": 0.278,
    "@": 1.0, "%": 0.89, "$": 0.556, "#": 0.556, "&": 0.667,
}  # fmt: skip


def _advance(ch: str) -> float:
    return _WIDTHS.get(ch, 0.556)


def _is_transition(left: str, right: str) -> bool:
    """A boundary where two words often meet: "rI" in "OrderID", "e5" in "code51"."""
    return (
        (left.islower() and right.isupper())
        or (left.isalpha() and right.isdigit())
        or (left.isdigit() and right.isalpha())
        or right in "(&"
        or left in ",:;)"
    )


def _blank_runs(ink: np.ndarray, lo: int, hi: int, min_gap: float) -> list[float]:
    gaps, start = [], None
    for x in range(lo, hi):
        if not ink[x] and start is None:
            start = x
        elif ink[x] and start is not None:
            if x - start >= min_gap:
                gaps.append((start + x) / 2)
            start = None
    return gaps


def restore_spaces(line: OcrLine, image: np.ndarray) -> OcrLine:
    """Put back the word spaces RapidOCR drops in Latin lines ("Darkmode" -> "Dark mode").

    A word space is a run of blank pixel columns clearly wider than the gaps between
    letters (measured: 5-7 px against 1-3 px at 16 px text). Gaps that match the spaces
    OCR kept anchor each word; a remaining gap inside a word is mapped to the character
    boundary an average font puts there, and a space is only inserted when that mapping
    is unambiguous. Display only: matching never depends on spaces (see `normalise`).
    """
    text = line.text
    if has_cjk(text) or len(text) < 4 or not any(ch.isalpha() for ch in text):
        return line
    crop = image[max(0, line.y1) : line.y2, max(0, line.x1) : line.x2].astype(np.int16)
    if crop.shape[0] < 6 or crop.shape[1] < 10:
        return line
    edge = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    diff = np.abs(crop - np.median(edge, axis=0)).sum(axis=2)
    ink = diff > max(60.0, 0.3 * float(diff.max()))
    cols, rows = np.flatnonzero(ink.any(axis=0)), np.flatnonzero(ink.any(axis=1))
    if len(cols) < 2:
        return line
    ink_cols = ink.any(axis=0)
    left, right = int(cols[0]), int(cols[-1]) + 1
    min_gap = max(4.5, 0.34 * float(rows[-1] - rows[0] + 1))
    gaps = _blank_runs(ink_cols, left, right, min_gap)
    words = text.split(" ")
    if len(gaps) <= len(words) - 1:
        return line
    # Predicted x of every character boundary, at the line's average scale.
    widths = [_advance(ch) for ch in text]
    em = (right - left) / sum(widths)
    xs = np.cumsum([0.0, *widths]) * em + left
    # Anchor: each space OCR kept takes the nearest gap; words then get their own scale.
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    free = list(gaps)
    anchors = []
    for i in spaces:
        centre = (xs[i] + xs[i + 1]) / 2
        if free:
            nearest = min(free, key=lambda g: abs(g - centre))
            free.remove(nearest)
            anchors.append(nearest)
    bounds = [left, *sorted(anchors), right]
    inserts = []
    start = 0
    for w, word in enumerate(words):
        lo, hi = bounds[w], bounds[w + 1]
        inner = [g for g in free if lo < g < hi]
        if inner and len(word) >= 2:
            ww = [_advance(ch) for ch in word]
            scale = (hi - lo) / sum(ww)
            wx = np.cumsum([0.0, *ww]) * scale + lo
            for gap in inner:
                k = int(np.argmin(np.abs(wx[1:-1] - gap))) + 1  # boundary before word[k]
                # Unambiguous: a camelCase/letter-digit boundary within one character, or
                # a predicted position that lands close to the gap.
                near = [j for j in (k - 1, k, k + 1) if 0 < j < len(word)]
                trans = [j for j in near if _is_transition(word[j - 1], word[j])]
                if trans:
                    inserts.append(start + min(trans, key=lambda j: abs(wx[j] - gap)))
                elif abs(wx[k] - gap) <= 0.22 * scale:
                    inserts.append(start + k)
        start += len(word) + 1
    if not inserts:
        return line
    chars = list(text)
    for k in sorted(set(inserts), reverse=True):
        chars.insert(k, " ")
    return OcrLine(text="".join(chars), box=line.box, score=line.score)


class ScreenOcr:
    """One RapidOCR instance. Its ONNX sessions are shared; calls are serialised because
    the wrapper keeps per-call state and two cores gain nothing from running two at once."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        # Screenshots are upright: skipping the 180-degree classifier saves time and
        # avoids flipping short lines by mistake.
        self._ocr = RapidOCR(use_cls=False)
        self._lock = threading.Lock()

    def read(self, image: np.ndarray) -> list[OcrLine]:
        """`image` is RGB uint8 (H, W, 3); RapidOCR wants BGR like cv2.imread gives."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        with self._lock:
            result, _ = self._ocr(bgr, use_cls=False)
        return [restore_spaces(line, image) for line in lines_from_result(result)]


_instance: ScreenOcr | None = None
_instance_lock = threading.Lock()


def get_ocr() -> ScreenOcr:
    """The process-wide OCR, created on first use (loading takes ~0.1 s)."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = ScreenOcr()
    return _instance
