"""PII in the pixels of a screenshot: OCR it, find the same PII as in text, box it out.

The stored copy people see (owner, reviewers) gets solid boxes over every ID number, bank
card, phone number, email and IP address that OCR can read; the unredacted pixels are kept
only in the model's copy, and only as long as settings say (see pipeline.py).

Solid boxes, not blur: a blurred run of digits can often be recovered by trying every
candidate; a filled rectangle cannot.

OCR gives one box per text line, not per character, so where a span sits inside its
line is estimated from typical glyph widths and then padded generously; a span covering
most of a line takes the whole line. Erring towards covering a little too much is the
point. RapidOCR sometimes drops spaces and our OCR wrapper puts some back in the wrong
place ("alic e.chen@..."), so each line is searched as read and with its spaces removed,
and the union of both is covered.

Plain functions, no Django; OCR comes from inference.lite.ocr (onnxruntime, no torch).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .pii import Span, _render, find_pii_spans

BOX_COLOUR = (32, 32, 32)
# A span covering this much of its line takes the whole line.
WHOLE_LINE_FRACTION = 0.6


@dataclass(frozen=True)
class OcrText:
    """A line as OCR read it: the text and its box in pixels (x1, y1, x2, y2)."""

    text: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class ImageRedaction:
    data: bytes  # the image with PII boxed out, same format as the input
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # The OCR text with PII replaced by placeholders, one line per OCR line.
    text: str = ""

    @property
    def found(self) -> bool:
        return bool(self.boxes)


def line_spans(text: str) -> list[Span]:
    """PII spans in one OCR line: as read, and with every space removed (mapped back)."""
    spans = list(find_pii_spans(text))
    positions = [i for i, ch in enumerate(text) if not ch.isspace()]
    squashed = "".join(text[i] for i in positions)
    if len(squashed) != len(text):
        for span in find_pii_spans(squashed):
            spans.append(Span(positions[span.start], positions[span.end - 1] + 1, span.kind))
    return _union(spans)


def _union(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(spans):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            longer = last if len(last) >= len(span) else span
            merged[-1] = Span(last.start, max(last.end, span.end), longer.kind)
        else:
            merged.append(span)
    return merged


def _advance(ch: str) -> float:
    """Rough advance width in ems: enough to place a span inside a line."""
    if "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\uffef":
        return 1.0  # CJK and full-width forms
    if ch.isspace():
        return 0.3
    if ch.isdigit():
        return 0.56
    if ch.isupper() or ch in "@%&MW":
        return 0.72
    if ch in ".,:;|!'`il":
        return 0.3
    return 0.55


def span_box(line: OcrText, span: Span) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = line.box
    widths = [_advance(ch) for ch in line.text]
    total = sum(widths) or 1.0
    if (span.end - span.start) / max(len(line.text), 1) >= WHOLE_LINE_FRACTION:
        left, right = x1, x2
    else:
        scale = (x2 - x1) / total
        left = x1 + sum(widths[: span.start]) * scale
        right = x1 + sum(widths[: span.end]) * scale
        # One and a half average characters of slack on each side: fonts differ.
        pad = 1.5 * scale * total / max(len(widths), 1)
        left, right = max(x1, left - pad), min(x2, right + pad)
    grow = max(2, round(0.15 * (y2 - y1)))
    return (int(left), max(0, y1 - grow), int(round(right)) + 1, y2 + grow)


def redact_image(
    data: bytes,
    *,
    read_lines: Callable[[np.ndarray], list[OcrText]],
    max_side: int = 4096,
) -> ImageRedaction:
    """Box out PII that OCR finds in `data` (a sanitised PNG or JPEG).

    `read_lines` takes an RGB array and returns OCR lines (see `ocr_lines`). Images larger
    than `max_side` are read from a downscaled copy (boxes are scaled back).
    """
    with Image.open(io.BytesIO(data)) as opened:
        fmt = opened.format or "PNG"
        image = opened.convert("RGBA" if opened.mode == "RGBA" else "RGB")
    scale = min(1.0, max_side / max(image.size))
    view = image.convert("RGB")
    if scale < 1.0:
        view = view.resize((round(image.width * scale), round(image.height * scale)))
    lines = read_lines(np.asarray(view))

    counts: Counter[str] = Counter()
    boxes: list[tuple[int, int, int, int]] = []
    redacted_lines: list[str] = []
    for line in lines:
        spans = line_spans(line.text)
        redacted_lines.append(_render(line.text, spans, len(line.text), counts))
        for span in spans:
            bx1, by1, bx2, by2 = span_box(line, span)
            boxes.append(
                (
                    max(0, int(bx1 / scale)),
                    max(0, int(by1 / scale)),
                    min(image.width, int(np.ceil(bx2 / scale))),
                    min(image.height, int(np.ceil(by2 / scale))),
                )
            )
    text = "\n".join(redacted_lines)
    if not boxes:
        return ImageRedaction(data=data, text=text)
    draw = ImageDraw.Draw(image)
    fill = (*BOX_COLOUR, 255) if image.mode == "RGBA" else BOX_COLOUR
    for box in boxes:
        draw.rectangle(box, fill=fill)
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=92, subsampling=0)
    else:
        image.save(out, "PNG")
    return ImageRedaction(data=out.getvalue(), boxes=boxes, counts=dict(counts), text=text)


def ocr_lines(image: np.ndarray) -> list[OcrText]:
    """The lite engine's OCR (RapidOCR over onnxruntime; no torch)."""
    from inference.lite.ocr import get_ocr

    return [OcrText(text=line.text, box=line.box) for line in get_ocr().read(image)]
