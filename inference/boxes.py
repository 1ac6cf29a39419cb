"""Grounding boxes out of a streamed answer.

GLM-4.6V marks a region of the screenshot as ``<|begin_of_box|>[x1,y1,x2,y2]<|end_of_box|>``
(sometimes ``[[x1,y1,x2,y2]]`` or several boxes in one markup), with coordinates on a
0-1000 grid relative to the image it saw. The web side wants plain text plus boxes in
pixels of the original screenshot, so this parser removes the markup from the text and
turns it into `Box` events.

Text arrives in arbitrary chunks (one decoded piece per step), so a marker can be split
over several chunks: anything that could still become a marker is held back until it is
decided. Pure Python, no torch, so it is cheap to test and to reuse.
"""

from __future__ import annotations

import re

from .types import Box

BEGIN = "<|begin_of_box|>"
END = "<|end_of_box|>"
GRID = 1000  # GLM grounding coordinates run from 0 to 1000 on both axes

# Four numbers in brackets, with any nesting depth and spacing; floats tolerated.
_QUAD = re.compile(
    r"\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,"
    r"\s*(-?\d+(?:\.\d+)?)\s*\]"
)
# A markup longer than this without its end marker is not a box: give the text back.
MAX_BOX_CHARS = 512


def _held_prefix_len(text: str, marker: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `marker`."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def _scale(value: float, size: int) -> int:
    value = min(max(value, 0.0), float(GRID))
    return int(round(value / GRID * size))


def parse_box_body(body: str, image_size: tuple[int, int] | None) -> tuple[list[Box], str]:
    """Boxes inside one markup body, and any text in it that was not coordinates.

    Without an image size the coordinates stay on the 0-1000 grid.
    """
    width, height = image_size if image_size else (GRID, GRID)
    boxes = []
    for match in _QUAD.finditer(body):
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        # Models sometimes swap corners; a box is the same region either way.
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        boxes.append(
            Box(
                x1=_scale(x1, width),
                y1=_scale(y1, height),
                x2=_scale(x2, width),
                y2=_scale(y2, height),
            )
        )
    rest = _QUAD.sub("", body)
    rest = re.sub(r"[\[\],\s]+", " ", rest).strip()
    return boxes, rest


class BoxStreamParser:
    """Feed decoded text chunks; get back (text to show, boxes found so far in this chunk).

    A markup body that contains no coordinates is given back as text (minus the markers),
    so that nothing the model said is silently lost.
    """

    def __init__(self, image_size: tuple[int, int] | None = None):
        self.image_size = image_size
        self._pending = ""  # text not yet decided (a possible marker start, or a box body)
        self._in_box = False

    def feed(self, chunk: str) -> tuple[str, list[Box]]:
        self._pending += chunk
        out: list[str] = []
        boxes: list[Box] = []
        while True:
            if not self._in_box:
                start = self._pending.find(BEGIN)
                if start < 0:
                    keep = _held_prefix_len(self._pending, BEGIN)
                    cut = len(self._pending) - keep
                    out.append(self._pending[:cut])
                    self._pending = self._pending[cut:]
                    break
                out.append(self._pending[:start])
                self._pending = self._pending[start + len(BEGIN) :]
                self._in_box = True
            else:
                end = self._pending.find(END)
                if end < 0:
                    if len(self._pending) > MAX_BOX_CHARS:
                        # Runaway markup: stop waiting and show it as text.
                        out.append(self._pending)
                        self._pending = ""
                        self._in_box = False
                    break
                found, rest = parse_box_body(self._pending[:end], self.image_size)
                if found:
                    boxes.extend(Box(b.x1, b.y1, b.x2, b.y2, label=rest) for b in found)
                else:
                    out.append(rest)
                self._pending = self._pending[end + len(END) :]
                self._in_box = False
        return "".join(out), boxes

    def finish(self) -> tuple[str, list[Box]]:
        """Flush at the end of the stream: an unterminated box still yields its coordinates."""
        pending, self._pending = self._pending, ""
        if not self._in_box:
            return pending, []
        self._in_box = False
        found, rest = parse_box_body(pending, self.image_size)
        if found:
            return "", [Box(b.x1, b.y1, b.x2, b.y2, label=rest) for b in found]
        return pending, []


def extract_boxes(text: str, image_size: tuple[int, int] | None = None) -> tuple[str, list[Box]]:
    """Whole-text convenience wrapper around `BoxStreamParser`."""
    parser = BoxStreamParser(image_size)
    clean, boxes = parser.feed(text)
    tail, more = parser.finish()
    return clean + tail, boxes + more
