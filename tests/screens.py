"""Screenshots the tests render themselves, so no binary fixtures live in the repo."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONT_DIR / name), size)


ORDERS = [
    ("10231", "Alice Chen", "Shipped", "$120.00"),
    ("10232", "Bob Li", "Pending", "$58.40"),
    ("10233", "Carol Wang", "Delivered", "$15.99"),
    ("10234", "Dan Zhou", "Cancelled", "$42.10"),
]


def orders_screenshot(size=(1280, 800)) -> Image.Image:
    """An order list where exactly one order (10232, $58.40) is still pending."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, size[0], 70], fill=(36, 41, 56))
    draw.text((32, 20), "Orders", font=font(30, bold=True), fill="white")
    columns = [60, 300, 640, 900]
    headers = ["Order ID", "Customer", "Status", "Total"]
    y = 130
    for x, header in zip(columns, headers, strict=True):
        draw.text((x, y), header, font=font(24, bold=True), fill=(60, 60, 60))
    draw.line([40, y + 45, size[0] - 40, y + 45], fill=(200, 200, 200), width=2)
    for row in ORDERS:
        y += 80
        for x, cell in zip(columns, row, strict=True):
            draw.text((x, y), cell, font=font(24), fill=(20, 20, 20))
    return image


def png_bytes(image: Image.Image | None = None) -> bytes:
    buffer = io.BytesIO()
    (image or orders_screenshot()).save(buffer, format="PNG")
    return buffer.getvalue()
