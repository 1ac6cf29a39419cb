"""The reading on hand-made OCR lines (and small drawn images): no OCR model involved."""

from __future__ import annotations

import numpy as np
from lite_evalset import font
from PIL import Image, ImageDraw

from inference.lite.ocr import OcrLine, normalise, restore_spaces
from inference.lite.reading import group_rows, read_screen


def line(text, x, y, w=None, h=20):
    return OcrLine(text, (x, y, x + (w or 9 * len(text)), y + h))


def orders_lines():
    rows = [
        ("A-1041", "Jane Cooper", "Delivered", "$120.00"),
        ("A-1042", "WadeWarren", "Pending", "$89.50"),
        ("A-1043", "Esther Howard", "Shipped", "$42.10"),
    ]
    lines = [line("Orders", 40, 20, h=34)]
    for x, text in zip(
        (40, 240, 480, 680), ("OrderID", "Customer", "Status", "Total"), strict=True
    ):
        lines.append(line(text, x, 100))
    for r, row in enumerate(rows):
        for x, text in zip((40, 240, 480, 680), row, strict=True):
            lines.append(line(text, x, 150 + 48 * r))
    return lines


def test_normalise_ignores_spaces_case_and_punctuation():
    assert normalise("Order ID") == normalise("OrderID") == "orderid"
    assert normalise("#A-1043") == "a1043"
    assert normalise("订单号：") == "订单号"


def test_rows_group_by_vertical_centre():
    rows = group_rows(orders_lines())
    assert [c.text for c in rows[1]] == ["OrderID", "Customer", "Status", "Total"]
    assert len(rows) == 5


def test_table_with_header_and_title():
    reading = read_screen(orders_lines())
    assert reading.kind == "table"
    assert reading.title.text == "Orders"
    (table,) = reading.tables
    assert table.columns == ["OrderID", "Customer", "Status", "Total"]
    assert [row[0].text for row in table.rows] == ["A-1041", "A-1042", "A-1043"]
    assert table.key_column() == 0
    assert [s.text for s in reading.statuses] == ["Delivered", "Pending", "Shipped"]


def test_label_value_fields():
    lines = [
        line("Invoice INV-7", 40, 20, h=34),
        line("Due date: April 2, 2024", 40, 80),
        line("Subtotal", 500, 200),
        line("$90.00", 800, 200),
        line("Total", 500, 240),
        line("$96.30", 800, 240),
    ]
    reading = read_screen(lines)
    fields = {f.name: f.text for f in reading.fields}
    assert fields == {"Due date": "April 2, 2024", "Subtotal": "$90.00", "Total": "$96.30"}
    assert reading.kind == "invoice"


def test_time_is_not_split_as_label():
    reading = read_screen([line("Meeting at 10:30", 40, 40)])
    assert reading.fields == []


def _settings_image():
    img = Image.new("RGB", (600, 300), "white")
    d = ImageDraw.Draw(img)
    # "on": a blue pill with the knob right; "off": a grey pill with the knob left.
    d.rounded_rectangle((500, 40, 548, 66), radius=13, fill=(37, 99, 235))
    d.ellipse((525, 43, 545, 63), fill="white")
    d.rounded_rectangle((500, 120, 548, 146), radius=13, fill=(203, 213, 225))
    d.ellipse((503, 123, 523, 143), fill="white")
    # a checked checkbox before its label
    d.rounded_rectangle((40, 200, 58, 218), radius=4, fill=(37, 99, 235))
    return np.asarray(img)


def test_switch_states_from_pixels():
    lines = [
        line("Dark mode", 40, 38),
        line("Use a dark theme", 40, 62, h=16),
        line("Notifications", 40, 118),
        line("Remember me", 70, 199),
    ]
    reading = read_screen(lines, _settings_image())
    states = {t.name: (t.on, t.kind) for t in reading.toggles}
    assert states == {
        "Dark mode": (True, "switch"),
        "Notifications": (False, "switch"),
        "Remember me": (True, "checkbox"),
    }
    assert reading.kind == "settings"


def test_button_and_login_form_from_pixels():
    img = Image.new("RGB", (500, 400), "white")
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((40, 60, 400, 100), radius=6, outline=(203, 213, 225), width=2)
    d.rounded_rectangle((40, 150, 400, 190), radius=6, outline=(203, 213, 225), width=2)
    d.rounded_rectangle((150, 230, 290, 276), radius=8, fill=(37, 99, 235))
    # Typed text is dark; a placeholder would be light grey (see the reading's input rule).
    d.text((52, 70), "jane@acme.io", font=font(16), fill=(15, 23, 42))
    lines = [
        line("Email", 40, 34),
        line("jane@acme.io", 52, 70),
        line("Password", 40, 124),
        line("Sign in", 185, 243),
    ]
    reading = read_screen(lines, np.asarray(img))
    assert [(b.name, b.primary) for b in reading.buttons] == [("Sign in", True)]
    fields = {f.name: (f.kind, f.text) for f in reading.fields}
    assert fields == {"Email": ("input", "jane@acme.io"), "Password": ("password", "")}
    assert reading.kind == "login form"


def test_restore_spaces_from_ink_gaps():
    def rendered(text):
        img = Image.new("RGB", (300, 40), "white")
        draw = ImageDraw.Draw(img)
        draw.text((10, 10), text, font=font(16), fill="black")
        width = int(draw.textlength(text, font=font(16)))
        return np.asarray(img), (8, 8, 12 + width, 32)

    image, box = rendered("Dark mode")
    assert restore_spaces(OcrLine("Darkmode", box), image).text == "Dark mode"
    image, box = rendered("A-1043")
    assert restore_spaces(OcrLine("A-1043", box), image).text == "A-1043"
