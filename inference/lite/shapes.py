"""Non-text shapes of a screenshot, found in its pixels: switches, checkboxes, buttons,
input boxes and dialog panels.

UI screenshots are made of flat colour regions, so instead of edge detection we split the
image into connected regions of one (quantised) colour, with the OCR text boxes cut out.
A blue pill with nothing written in it next to a label is a switch that is on; a grey one
is off; a filled rectangle that tightly holds one short line of text is a button; a wide
hollow rectangle under a label is an input box. Pure numpy + OpenCV (which RapidOCR
already depends on), so it is unit-testable on drawn images.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .ocr import OcrLine

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)
    area: int
    colour: Colour
    inner_fill: float  # share of the middle half of the box that belongs to the region

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def fill(self) -> float:
        return self.area / max(1, self.width * self.height)

    def contains(self, box: Sequence[int], slack: int = 2) -> bool:
        return (
            box[0] >= self.box[0] - slack
            and box[1] >= self.box[1] - slack
            and box[2] <= self.box[2] + slack
            and box[3] <= self.box[3] + slack
        )


@dataclass(frozen=True)
class Shape:
    kind: str  # "switch" | "checkbox" | "button" | "input" | "dialog" | "pane"
    box: tuple[int, int, int, int]
    colour: Colour
    on: bool | None = None  # switches and checkboxes
    line: OcrLine | None = None  # the text inside a button or an input
    filled: bool = False
    saturated: bool = False


def colour_distance(a: Colour, b: Colour) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))


def luminance(colour: Colour) -> float:
    r, g, b = colour
    return 0.299 * r + 0.587 * g + 0.114 * b


def is_saturated(colour: Colour) -> bool:
    """A "coloured" fill (blue, green, ...) as opposed to white, black or grey."""
    _, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    return s > 0.3 and v > 0.25


def _quantised_keys(image: np.ndarray) -> np.ndarray:
    # 32 levels per channel: anti-aliasing becomes its own tiny regions, flat fills stay one.
    q = (image >> 3).astype(np.int32)
    return (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]


def _key_colour(key: int) -> Colour:
    return (((key >> 10) & 31) * 8 + 4, ((key >> 5) & 31) * 8 + 4, (key & 31) * 8 + 4)


def find_regions(image: np.ndarray, lines: Sequence[OcrLine], min_side: int) -> list[Region]:
    """Connected single-colour regions, OCR text cut out, smaller than `min_side` dropped."""
    keys = _quantised_keys(image)
    for line in lines:
        keys[max(0, line.y1) : line.y2 + 1, max(0, line.x1) : line.x2 + 1] = -1
    values, counts = np.unique(keys, return_counts=True)
    min_area = max(12, min_side * min_side // 2)
    regions = []
    for value, count in zip(values, counts, strict=True):
        if value < 0 or count < min_area:
            continue
        mask = (keys == value).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < min_area or w < min_side or h < min_side:
                continue
            inner = labels[y + h // 4 : y + h - h // 4, x + w // 4 : x + w - w // 4]
            inner_fill = float((inner == i).mean()) if inner.size else 0.0
            regions.append(Region((x, y, x + w, y + h), area, _key_colour(int(value)), inner_fill))
    return regions


def background_colour(image: np.ndarray) -> Colour:
    keys = _quantised_keys(image[::4, ::4])
    values, counts = np.unique(keys, return_counts=True)
    return _key_colour(int(values[int(np.argmax(counts))]))


def ring_colour(image: np.ndarray, box: Sequence[int], pad: int = 3) -> Colour:
    """The most common colour just outside a box: what the shape is drawn on."""
    h, w = image.shape[:2]
    x1, y1 = max(0, box[0] - pad), max(0, box[1] - pad)
    x2, y2 = min(w, box[2] + pad), min(h, box[3] + pad)
    t = min(2, pad)  # strip thickness: never reach back into the box itself
    strips = [
        image[y1 : y1 + t, x1:x2],
        image[y2 - t : y2, x1:x2],
        image[y1:y2, x1 : x1 + t].transpose(1, 0, 2),
        image[y1:y2, x2 - t : x2].transpose(1, 0, 2),
    ]
    pixels = np.concatenate([s.reshape(-1, 3) for s in strips if s.size])
    if not len(pixels):
        return (255, 255, 255)
    keys = _quantised_keys(pixels[None, :, :])[0]
    values, counts = np.unique(keys, return_counts=True)
    return _key_colour(int(values[int(np.argmax(counts))]))


def text_colour(image: np.ndarray, line: OcrLine) -> tuple[Colour, float]:
    """(colour of the glyphs, their contrast against the line's own background)."""
    crop = image[max(0, line.y1) : line.y2, max(0, line.x1) : line.x2].reshape(-1, 3)
    if not len(crop):
        return (0, 0, 0), 0.0
    bg = np.asarray(ring_colour(image, line.box, pad=1), dtype=float)
    dist = np.linalg.norm(crop.astype(float) - bg, axis=1)
    far = crop[dist >= np.percentile(dist, 90)]
    colour = tuple(int(c) for c in far.mean(axis=0))
    return colour, float(dist.max())


def _lines_inside(region: Region, lines: Sequence[OcrLine]) -> list[OcrLine]:
    return [line for line in lines if region.contains(line.box)]


def classify_regions(
    image: np.ndarray, lines: Sequence[OcrLine], text_height: float
) -> list[Shape]:
    """Turn colour regions into the UI shapes the reading cares about."""
    th = max(8.0, text_height)
    img_h, img_w = image.shape[:2]
    regions = find_regions(image, lines, min_side=max(6, int(th * 0.45)))
    page = background_colour(image)
    shapes: list[Shape] = []
    claimed: list[tuple[int, int, int, int]] = []  # boxes whose inner regions are parts

    def inside_claimed(box: Sequence[int]) -> bool:
        return any(
            box[0] >= c[0] - 1 and box[1] >= c[1] - 1 and box[2] <= c[2] + 1 and box[3] <= c[3] + 1
            for c in claimed
        )

    # Largest first, so the outline of a control claims its own interior and knob.
    for region in sorted(regions, key=lambda r: -r.width * r.height):
        if inside_claimed(region.box):
            continue
        inside = _lines_inside(region, lines)
        w, h = region.width, region.height
        surround = ring_colour(image, region.box)
        stands_out = colour_distance(region.colour, surround) > 24
        touches_edge = (
            region.box[0] <= 1
            or region.box[1] <= 1
            or region.box[2] >= img_w - 1
            or region.box[3] >= img_h - 1
        )
        if touches_edge:
            # A sidebar or top bar: a big block of its own colour on the edge of the screen.
            # Its lines are navigation, and must not be read as extra table columns.
            big = region.width * region.height >= 0.04 * img_w * img_h
            strip = region.width <= 0.4 * img_w or region.height <= 0.2 * img_h
            if big and strip and len(inside) >= 2 and colour_distance(region.colour, page) > 24:
                shapes.append(Shape("pane", region.box, region.colour))
            continue
        if not stands_out and len(inside) == 1:
            # The white inside of an outlined button is only set off by its 1px border.
            stands_out = colour_distance(region.colour, ring_colour(image, region.box, 1)) > 24
        if not stands_out:
            continue
        aspect = w / max(1, h)
        if not inside and 1.4 <= aspect <= 3.0 and 0.5 * th <= h <= 2.8 * th and region.fill > 0.3:
            shapes.append(_switch(region))
            claimed.append(region.box)
        elif not inside and 0.8 <= aspect <= 1.25 and 0.55 * th <= h <= 1.9 * th:
            shapes.append(_checkbox(region, regions, surround))
            claimed.append(region.box)
        elif not inside and aspect >= 4 and 1.3 * th <= h <= 4.5 * th:
            shapes.append(Shape("input", region.box, region.colour))
            claimed.append(region.box)
        elif len(inside) == 1:
            shape = _boxed_text(region, inside[0])
            if shape is not None:
                shapes.append(shape)
                claimed.append(region.box)
        elif len(inside) >= 2 and _is_dialog(region, surround, img_w, img_h):
            shapes.append(Shape("dialog", region.box, region.colour))
    # Dialog panels are containers, so they claim nothing; everything else is deduplicated.
    return shapes


def _switch(region: Region) -> Shape:
    # An "on" switch is a coloured pill; "off" is grey (light or dark theme alike). The
    # white knob is a hole in the region, so the region's own colour is the track colour.
    on = is_saturated(region.colour)
    return Shape("switch", region.box, region.colour, on=on, saturated=on, filled=True)


def _checkbox(region: Region, regions: Sequence[Region], surround: Colour) -> Shape:
    if region.inner_fill >= 0.3:
        # Filled square (a white tick on a colour), or a dark filled box.
        on = is_saturated(region.colour) or luminance(region.colour) < 90
    else:
        # A hollow outline: checked only if something that is not background sits inside
        # (the dot of a radio button, a drawn tick).
        x1, y1, x2, y2 = region.box
        on = any(
            other is not region
            and other.box[0] > x1
            and other.box[1] > y1
            and other.box[2] < x2
            and other.box[3] < y2
            and colour_distance(other.colour, surround) > 60
            for other in regions
        )
    return Shape(
        "checkbox", region.box, region.colour, on=on, saturated=is_saturated(region.colour)
    )


def _boxed_text(region: Region, line: OcrLine) -> Shape | None:
    w, h = region.width, region.height
    if h > 3.5 * line.height or h < line.height:
        return None
    left = line.x1 - region.box[0]
    right = region.box[2] - line.x2
    # A hole the size of the text box is cut out of the region: discount it.
    fill = region.area / max(1, w * h - line.width * line.height)
    filled = fill > 0.6
    if w > line.width + 3 * line.height and left < 2 * line.height and right > 2.5 * left + 8:
        return Shape("input", region.box, region.colour, line=line, filled=filled)
    if w <= line.width + 12 * line.height and abs(left - right) <= 0.35 * (left + right) + 6:
        return Shape(
            "button",
            region.box,
            region.colour,
            line=line,
            filled=filled,
            saturated=filled and is_saturated(region.colour),
        )
    return None


def _is_dialog(region: Region, surround: Colour, img_w: int, img_h: int) -> bool:
    big = region.width * region.height >= 0.06 * img_w * img_h
    # A modal sits on a dimmed page: the panel is clearly lighter than what surrounds it.
    dimmed = luminance(region.colour) - luminance(surround) > 30
    return big and dimmed
