"""Screenshots with personal data in them, rendered by the tests themselves."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from tests import screens

CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"

# Valid values: a GB 11643 resident ID (check digit X), a Luhn-valid UnionPay-range card,
# a China Mobile number, an email address.
ID_NUMBER = "11010519491231002X"
CARD = "6222021234567890128"
CARD_GROUPED = "6222 0212 3456 7890 128"
PHONE = "13912345678"
EMAIL = "wang.fang@example.com"
RAW_VALUES = [ID_NUMBER, CARD, PHONE, EMAIL]


def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(CJK_FONT, size)


def profile_screenshot() -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """A profile page with the four values on it, and where each was drawn."""
    image = Image.new("RGB", (1100, 520), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 1100, 64], fill=(36, 41, 56))
    draw.text((28, 14), "Account profile", font=screens.font(28, bold=True), fill="white")
    rows = [
        ("姓名 Name", "Wang Fang", None),
        ("身份证号 ID", ID_NUMBER, "id"),
        ("银行卡 Card", CARD_GROUPED, "card"),
        ("手机 Phone", PHONE, "phone"),
        ("邮箱 Email", EMAIL, "email"),
        ("订单 Order", "10232  Pending", None),
    ]
    where = {}
    y = 100
    font = cjk_font(26)
    for label, value, key in rows:
        draw.text((40, y), label, font=font, fill=(90, 90, 90))
        draw.text((330, y), value, font=font, fill=(20, 20, 20))
        if key:
            where[key] = draw.textbbox((330, y), value, font=font)
        y += 66
    return image, where


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def text_screenshot(text: str) -> bytes:
    image = Image.new("RGB", (900, 200), "white")
    ImageDraw.Draw(image).text((30, 70), text, font=cjk_font(30), fill="black")
    return png(image)
