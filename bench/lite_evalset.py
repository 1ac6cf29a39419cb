"""The lite engine's evaluation set: screenshots rendered with Pillow, questions in English
and Chinese, and the facts a correct answer must contain.

`render_screens(folder)` writes the PNGs and returns {name: path}; `CASES` lists the
questions. Expected strings are compared after `normalise` (case, spaces and punctuation
ignored), because OCR reads "Order ID" as "OrderID" and the answer may keep either.
`forbid` strings must not appear as whole words (a correct "off" answer must not say "on").
"""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class Case:
    screen: str
    question: str
    expect: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    cannot: bool = False  # the right answer is "cannot answer from this screenshot"

    @property
    def lang(self) -> str:
        return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in self.question) else "en"


# --- fonts: Debian paths first, then any matching file, then fontconfig ---

_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"))


@cache
def font_path(kind: str) -> str:
    names = {
        "sans": ("DejaVuSans.ttf",),
        "bold": ("DejaVuSans-Bold.ttf",),
        "cjk": ("NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansSC-Regular.otf"),
        "cjk-bold": ("NotoSansCJK-Bold.ttc", "NotoSansCJK-Regular.ttc"),
    }[kind]
    for name in names:
        for base in _FONT_DIRS:
            hits = glob.glob(os.path.join(base, "**", name), recursive=True)
            if hits:
                return sorted(hits)[0]
    pattern = {"sans": "DejaVu Sans", "bold": "DejaVu Sans:bold"}.get(kind, "Noto Sans CJK SC")
    try:
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found and os.path.exists(found):
        return found
    raise RuntimeError(f"no font found for {kind!r}: install fonts-dejavu-core and fonts-noto-cjk")


@cache
def font(size: int, kind: str = "sans") -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(kind), size)


def _fnt(size: int, bold: bool = False, text: str = "") -> ImageFont.FreeTypeFont:
    cjk = any("\u3000" <= ch <= "\u9fff" or ch == "¥" for ch in text)
    if cjk:
        return font(size, "cjk-bold" if bold else "cjk")
    return font(size, "bold" if bold else "sans")


# --- a tiny UI kit ---

BLUE = (37, 99, 235)
GREEN = (22, 163, 74)
RED = (220, 38, 38)
GREY_TEXT = (100, 116, 139)
BORDER = (203, 213, 225)
INK = (15, 23, 42)


class Canvas:
    def __init__(self, size: tuple[int, int], bg=(255, 255, 255)):
        self.image = Image.new("RGB", size, bg)
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy, text, size=16, bold=False, fill=INK, anchor="la"):
        self.draw.text(xy, text, font=_fnt(size, bold, text), fill=fill, anchor=anchor)

    def width(self, text, size=16, bold=False) -> int:
        return int(self.draw.textlength(text, font=_fnt(size, bold, text)))

    def box(self, xy, fill=None, outline=None, radius=6, width=1):
        self.draw.rounded_rectangle(xy, radius=radius, fill=fill, outline=outline, width=width)

    def button(self, x, y, label, primary=True, colour=BLUE, size=16, pad=18, height=40):
        w = self.width(label, size, bold=True) + 2 * pad
        if primary:
            self.box((x, y, x + w, y + height), fill=colour, radius=8)
            self.text((x + w / 2, y + height / 2), label, size, True, (255, 255, 255), "mm")
        else:
            self.box((x, y, x + w, y + height), fill=(255, 255, 255), outline=BORDER, radius=8)
            self.text((x + w / 2, y + height / 2), label, size, True, INK, "mm")
        return w

    def input(self, x, y, w, value="", placeholder="", h=42, size=16):
        self.box((x, y, x + w, y + h), fill=(255, 255, 255), outline=BORDER, radius=6, width=2)
        if value:
            self.text((x + 12, y + h / 2), value, size, fill=INK, anchor="lm")
        elif placeholder:
            self.text((x + 12, y + h / 2), placeholder, size, fill=(156, 163, 175), anchor="lm")

    def switch(self, x, y, on, w=48, h=26, off=(203, 213, 225), on_colour=BLUE):
        self.box((x, y, x + w, y + h), fill=on_colour if on else off, radius=h // 2)
        r = h // 2 - 3
        cx = x + w - h // 2 if on else x + h // 2
        cy = y + h // 2
        self.draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 255, 255))

    def checkbox(self, x, y, checked, s=18):
        if checked:
            self.box((x, y, x + s, y + s), fill=BLUE, radius=4)
            self.draw.line(
                [(x + 4, y + s / 2), (x + s / 2 - 1, y + s - 5), (x + s - 4, y + 4)],
                fill=(255, 255, 255),
                width=2,
            )
        else:
            self.box((x, y, x + s, y + s), fill=(255, 255, 255), outline=(148, 163, 184), width=2)

    def pill(self, x, y, label, fg, bg, size=14):
        w = self.width(label, size) + 20
        self.box((x, y - 3, x + w, y + size + 9), fill=bg, radius=12)
        self.text((x + 10, y + 1), label, size, fill=fg)

    def table(self, x, y, widths, header, rows, row_h=48, size=15, status_col=None, pills=None):
        self.draw.rectangle((x, y, x + sum(widths), y + row_h), fill=(248, 250, 252))
        cx = x
        for w, h in zip(widths, header, strict=True):
            self.text((cx + 14, y + row_h / 2), h, size, True, GREY_TEXT, "lm")
            cx += w
        for r, row in enumerate(rows):
            top = y + row_h * (r + 1)
            self.draw.line((x, top, x + sum(widths), top), fill=(226, 232, 240), width=1)
            cx = x
            for c, (w, cell) in enumerate(zip(widths, row, strict=True)):
                if c == status_col and pills and cell in pills:
                    fg, bg = pills[cell]
                    self.pill(cx + 14, top + row_h / 2 - 9, cell, fg, bg, size - 1)
                else:
                    self.text((cx + 14, top + row_h / 2), cell, size, anchor="lm")
                cx += w


PILLS_EN = {
    "Pending": ((161, 98, 7), (254, 243, 199)),
    "Shipped": ((29, 78, 216), (219, 234, 254)),
    "Delivered": ((21, 128, 61), (220, 252, 231)),
    "Cancelled": ((185, 28, 28), (254, 226, 226)),
    "Online": ((21, 128, 61), (220, 252, 231)),
    "Offline": ((185, 28, 28), (254, 226, 226)),
    "Degraded": ((161, 98, 7), (254, 243, 199)),
}
PILLS_ZH = {
    "待发货": ((161, 98, 7), (254, 243, 199)),
    "已发货": ((29, 78, 216), (219, 234, 254)),
    "已完成": ((21, 128, 61), (220, 252, 231)),
    "已取消": ((185, 28, 28), (254, 226, 226)),
}


def _sidebar(c: Canvas, items, active, h, title="Glimpse"):
    c.draw.rectangle((0, 0, 220, h), fill=(15, 23, 42))
    c.text((28, 28), title, 20, True, (255, 255, 255))
    for i, item in enumerate(items):
        y = 100 + 44 * i
        if item == active:
            c.box((14, y - 8, 206, y + 28), fill=(30, 41, 59), radius=6)
        c.text((32, y), item, 16, fill=(226, 232, 240) if item == active else (148, 163, 184))


# --- the screens ---


def orders_en() -> Image.Image:
    c = Canvas((1280, 800), (248, 250, 252))
    _sidebar(c, ["Dashboard", "Orders", "Customers", "Reports", "Settings"], "Orders", 800)
    c.text((260, 32), "Orders", 30, True)
    c.text((260, 76), "Track and manage customer orders", 15, fill=GREY_TEXT)
    c.button(1010, 34, "Export", primary=False)
    c.button(1110, 34, "New order")
    c.box((250, 130, 1250, 130 + 48 * 7 + 20), fill=(255, 255, 255), outline=(226, 232, 240))
    rows = [
        ("A-1041", "Jane Cooper", "May 2, 2024", "Delivered", "$120.00"),
        ("A-1042", "Wade Warren", "May 3, 2024", "Shipped", "$89.50"),
        ("A-1043", "Esther Howard", "May 4, 2024", "Pending", "$342.75"),
        ("A-1044", "Cameron Lee", "May 4, 2024", "Delivered", "$56.20"),
        ("A-1045", "Brooklyn Simmons", "May 5, 2024", "Cancelled", "$210.00"),
        ("A-1046", "Leslie Alexander", "May 6, 2024", "Shipped", "$74.90"),
    ]
    c.table(
        260,
        140,
        [160, 250, 200, 200, 170],
        ["Order ID", "Customer", "Date", "Status", "Total"],
        rows,
        status_col=3,
        pills=PILLS_EN,
    )
    c.text((260, 510), "Showing 6 of 6 orders", 14, fill=GREY_TEXT)
    return c.image


def login_en() -> Image.Image:
    c = Canvas((1024, 768), (241, 245, 249))
    c.box((312, 100, 712, 640), fill=(255, 255, 255), outline=(226, 232, 240), radius=12)
    c.text((512, 150), "Sign in to Glimpse", 26, True, anchor="mm")
    c.text((512, 188), "Welcome back! Please enter your details.", 14, fill=GREY_TEXT, anchor="mm")
    c.text((352, 230), "Email", 15, True)
    c.input(352, 256, 320, value="jane@acme.io")
    c.text((352, 326), "Password", 15, True)
    c.input(352, 352, 320, value="••••••••••")
    c.checkbox(352, 420, True)
    c.text((380, 420), "Remember me", 15)
    c.text((672, 420), "Forgot password?", 15, fill=BLUE, anchor="ra")
    c.box((352, 470, 672, 516), fill=BLUE, radius=8)
    c.text((512, 493), "Sign in", 17, True, (255, 255, 255), "mm")
    c.text((512, 580), "Don't have an account? Sign up", 14, fill=GREY_TEXT, anchor="mm")
    return c.image


def settings_en() -> Image.Image:
    c = Canvas((1024, 768))
    c.text((60, 40), "Settings", 30, True)
    c.text((60, 110), "Appearance", 19, True)
    rows = [
        (160, "Dark mode", "Use a dark colour theme everywhere", True),
        (240, "Compact layout", "Show more rows on each page", False),
    ]
    rows2 = [
        (380, "Email notifications", "Get a summary of activity by email", False),
        (460, "Push notifications", "Alerts on your phone when orders change", True),
        (540, "Two-factor authentication", "Ask for a code when signing in", True),
    ]
    c.text((60, 330), "Notifications & security", 19, True)
    for y, label, desc, on in rows + rows2:
        c.text((60, y), label, 17)
        c.text((60, y + 26), desc, 14, fill=GREY_TEXT)
        c.switch(900, y + 8, on)
        c.draw.line((60, y + 62, 964, y + 62), fill=(241, 245, 249))
    c.text((60, 628), "Language", 17)
    c.box((700, 618, 964, 658), outline=BORDER, radius=6, width=2)
    c.text((714, 638), "English (US)", 16, anchor="lm")
    c.button(820, 690, "Save changes")
    return c.image


def dialog_en() -> Image.Image:
    base = orders_en().resize((1024, 640))
    dim = Image.new("RGB", base.size, (0, 0, 0))
    img = Image.blend(base, dim, 0.55)
    c = Canvas(img.size)
    c.image = img
    c.draw = ImageDraw.Draw(img)
    c.box((262, 190, 762, 450), fill=(255, 255, 255), radius=12)
    c.text((294, 222), "Delete project?", 22, True)
    c.text((294, 272), "This will permanently delete the project Apollo", 15, fill=(51, 65, 85))
    c.text((294, 296), "and its 12 files. This cannot be undone.", 15, fill=(51, 65, 85))
    c.button(520, 380, "Cancel", primary=False)
    c.button(630, 380, "Delete", colour=RED)
    return img


def invoice_en() -> Image.Image:
    c = Canvas((1000, 1000))
    c.text((60, 50), "Invoice INV-2024-0117", 28, True)
    c.pill(820, 58, "Unpaid", (185, 28, 28), (254, 226, 226), 15)
    c.text((60, 120), "Issued: March 3, 2024", 15, fill=GREY_TEXT)
    c.text((60, 146), "Due date: April 2, 2024", 15, fill=GREY_TEXT)
    c.text((60, 200), "Bill to", 15, True)
    c.text((60, 226), "Northwind Traders", 15)
    c.text((60, 250), "42 Harbour Street, Leeds", 15, fill=GREY_TEXT)
    rows = [
        ("Website redesign", "1", "$800.00", "$800.00"),
        ("Hosting (12 months)", "1", "$240.00", "$240.00"),
        ("Support hours", "2", "$55.00", "$110.00"),
    ]
    c.table(60, 310, [420, 120, 160, 180], ["Description", "Qty", "Unit price", "Amount"], rows)
    y = 310 + 48 * 4 + 30
    for label, value, bold in (
        ("Subtotal", "$1,150.00", False),
        ("Tax (8%)", "$92.00", False),
        ("Total", "$1,242.00", True),
    ):
        c.text((600, y), label, 16, bold)
        c.text((940, y), value, 16, bold, anchor="ra")
        y += 40
    c.button(800, y + 30, "Pay now")
    return c.image


def orders_zh() -> Image.Image:
    c = Canvas((1280, 800), (248, 250, 252))
    _sidebar(c, ["首页", "订单管理", "商品管理", "客户", "设置"], "订单管理", 800, "小店后台")
    c.text((260, 30), "订单列表", 30, True)
    c.button(1130, 34, "导出订单")
    c.box((250, 120, 1250, 120 + 48 * 6 + 20), fill=(255, 255, 255), outline=(226, 232, 240))
    rows = [
        ("20240512001", "王芳", "2024-05-12", "已完成", "¥128.00"),
        ("20240512002", "李伟", "2024-05-12", "已发货", "¥56.50"),
        ("20240512003", "张敏", "2024-05-13", "待发货", "¥299.00"),
        ("20240512004", "刘洋", "2024-05-13", "已取消", "¥88.00"),
        ("20240512005", "陈静", "2024-05-14", "已发货", "¥1,050.00"),
    ]
    c.table(
        260,
        130,
        [200, 200, 220, 200, 160],
        ["订单号", "客户", "下单时间", "状态", "金额"],
        rows,
        status_col=3,
        pills=PILLS_ZH,
    )
    c.text((260, 450), "共 5 条", 14, fill=GREY_TEXT)
    return c.image


def settings_zh() -> Image.Image:
    c = Canvas((900, 720))
    c.text((50, 36), "设置", 30, True)
    items = [
        (120, "深色模式", "在夜间使用深色主题", True),
        (200, "消息通知", "有新订单时推送通知", False),
        (280, "自动更新", "在 Wi-Fi 下自动下载更新", True),
        (360, "位置信息", "允许应用获取你的位置", False),
    ]
    for y, label, desc, on in items:
        c.text((50, y), label, 18)
        c.text((50, y + 28), desc, 14, fill=GREY_TEXT)
        c.switch(780, y + 10, on, on_colour=GREEN)
    c.text((50, 450), "语言：简体中文", 18)
    c.text((50, 500), "缓存大小：128 MB", 18)
    c.button(740, 600, "保存设置")
    return c.image


def login_zh() -> Image.Image:
    c = Canvas((900, 700), (243, 244, 246))
    c.box((250, 80, 650, 600), fill=(255, 255, 255), radius=12)
    c.text((450, 130), "欢迎登录", 28, True, anchor="mm")
    c.text((290, 190), "手机号", 16)
    c.input(290, 218, 320, value="13800138000")
    c.text((290, 286), "密码", 16)
    c.input(290, 314, 320, value="••••••••")
    c.checkbox(290, 382, False)
    c.text((318, 381), "记住我", 15)
    c.text((610, 381), "忘记密码？", 15, fill=BLUE, anchor="ra")
    c.box((290, 430, 610, 476), fill=BLUE, radius=8)
    c.text((450, 453), "登录", 18, True, (255, 255, 255), "mm")
    c.text((450, 530), "还没有账号？立即注册", 15, fill=GREY_TEXT, anchor="mm")
    return c.image


def status_en() -> Image.Image:
    c = Canvas((1280, 720))
    c.text((60, 40), "System status", 30, True)
    c.text((60, 88), "Last updated 2 minutes ago", 15, fill=GREY_TEXT)
    rows = [
        ("API", "eu-west-1", "Online", "99.98%"),
        ("Database", "eu-west-1", "Degraded", "99.12%"),
        ("Web app", "us-east-1", "Online", "100.00%"),
        ("Worker", "us-east-1", "Offline", "97.40%"),
    ]
    c.table(
        60,
        140,
        [300, 260, 260, 200],
        ["Service", "Region", "Status", "Uptime"],
        rows,
        row_h=56,
        status_col=2,
        pills=PILLS_EN,
    )
    return c.image


def profile_en() -> Image.Image:
    c = Canvas((1024, 768))
    c.text((60, 40), "Profile", 30, True)
    c.text((60, 88), "Update your personal details", 15, fill=GREY_TEXT)
    for y, label, value in (
        (140, "Full name", "Jane Cooper"),
        (230, "Email", "jane@acme.io"),
        (320, "Company", "Acme Robotics"),
    ):
        c.text((60, y), label, 15, True)
        c.input(60, y + 26, 420, value=value)
    c.text((60, 420), "Time zone", 15, True)
    c.input(60, 446, 420, placeholder="Select a time zone")
    c.text((600, 140), "Plan: Pro (annual)", 16)
    c.text((600, 172), "Member since: 2021", 16)
    c.button(60, 540, "Save", pad=26)
    c.button(170, 540, "Cancel", primary=False)
    return c.image


def payment_error_en() -> Image.Image:
    c = Canvas((900, 600), (249, 250, 251))
    c.box((200, 120, 700, 440), fill=(255, 255, 255), outline=(229, 231, 235), radius=12)
    c.draw.ellipse((425, 150, 475, 200), fill=(254, 226, 226))
    c.text((450, 175), "!", 26, True, RED, "mm")
    c.text((450, 232), "Payment failed", 24, True, anchor="mm")
    c.text((450, 276), "Your card was declined (code 51).", 15, fill=RED, anchor="mm")
    c.text(
        (450, 300), "Please use another card or contact your bank.", 15, fill=GREY_TEXT, anchor="mm"
    )
    c.button(330, 350, "Try again")
    c.button(460, 350, "Change card", primary=False)
    return c.image


def settings_dark_en() -> Image.Image:
    bg, fg = (17, 24, 39), (229, 231, 235)
    c = Canvas((800, 600), bg)
    c.text((50, 40), "Playback", 28, True, fg)
    for y, label, on in ((120, "Autoplay videos", True), (190, "Data saver", False)):
        c.text((50, y), label, 18, fill=fg)
        c.switch(680, y - 2, on, off=(75, 85, 99), on_colour=(16, 185, 129))
    c.text((50, 260), "Quality: 1080p", 18, fill=fg)
    return c.image


def checkout_zh() -> Image.Image:
    c = Canvas((900, 760))
    c.text((50, 36), "确认订单", 28, True)
    c.text((50, 100), "收货人：赵磊", 16)
    c.text((50, 130), "收货地址：上海市浦东新区世纪大道 100 号", 16, fill=GREY_TEXT)
    c.table(
        50,
        190,
        [400, 120, 160],
        ["商品", "数量", "单价"],
        [("无线耳机", "1", "¥899.00"), ("手机壳", "2", "¥49.00")],
    )
    y = 190 + 48 * 3 + 40
    for label, value in (("商品合计", "¥997.00"), ("运费", "¥12.00"), ("优惠", "-¥20.00")):
        c.text((500, y), label, 16)
        c.text((850, y), value, 16, anchor="ra")
        y += 38
    c.text((500, y + 10), "实付款", 18, True)
    c.text((850, y + 10), "¥989.00", 20, True, RED, "ra")
    c.button(720, y + 80, "提交订单", colour=RED)
    return c.image


SCREENS: dict[str, Callable[[], Image.Image]] = {
    "orders_en": orders_en,
    "login_en": login_en,
    "settings_en": settings_en,
    "dialog_en": dialog_en,
    "invoice_en": invoice_en,
    "status_en": status_en,
    "profile_en": profile_en,
    "payment_error_en": payment_error_en,
    "settings_dark_en": settings_dark_en,
    "orders_zh": orders_zh,
    "settings_zh": settings_zh,
    "login_zh": login_zh,
    "checkout_zh": checkout_zh,
}

CASES: tuple[Case, ...] = (
    # orders_en (1280x800: the latency screenshot)
    Case("orders_en", "Which order is still pending?", ("A-1043", "$342.75")),
    Case("orders_en", "What is the status of order A-1045?", ("Cancelled",)),
    Case("orders_en", "What is the total of order A-1041?", ("$120.00",)),
    Case("orders_en", "How many orders are shown?", ("6",)),
    Case("orders_en", "Which orders have been shipped?", ("A-1042", "A-1046")),
    Case("orders_en", "What is this screen?", ("Orders",)),
    Case("orders_en", "What's the weather in Paris today?", cannot=True),
    # login_en
    Case("login_en", "What does the Sign in button do?", ("Email", "Password")),
    Case("login_en", "Which email address is entered?", ("jane@acme.io",)),
    Case("login_en", "Is Remember me checked?", ("checked",), forbid=("unchecked", "not")),
    Case("login_en", "What is this screen?", ("sign in",)),
    # settings_en
    Case("settings_en", "Is dark mode on?", ("on",), forbid=("off",)),
    Case("settings_en", "Are email notifications enabled?", ("off",), forbid=("on",)),
    Case(
        "settings_en",
        "Which settings are turned on?",
        ("Dark mode", "Push notifications", "Two-factor authentication"),
        forbid=("Compact layout", "Email notifications"),
    ),
    Case("settings_en", "Which language is selected?", ("English",)),
    Case("settings_en", "Is Bluetooth on?", cannot=True),
    # dialog_en
    Case("dialog_en", "What does the Delete button do?", ("Apollo",)),
    Case("dialog_en", "How many files will be deleted?", ("12",)),
    # invoice_en
    Case("invoice_en", "What is the total?", ("$1,242.00",)),
    Case("invoice_en", "When is this invoice due?", ("April 2, 2024",)),
    Case("invoice_en", "How much is the tax?", ("$92.00",)),
    Case("invoice_en", "Is this invoice paid?", ("Unpaid",)),
    # status_en
    Case("status_en", "Which service is offline?", ("Worker",), forbid=("API",)),
    Case("status_en", "What is the uptime of the Database?", ("99.12%",)),
    # profile_en
    Case("profile_en", "What plan is this account on?", ("Pro",)),
    Case("profile_en", "What does the Save button do?", ("save",)),
    Case("profile_en", "What company is entered?", ("Acme Robotics",)),
    # payment_error_en
    Case("payment_error_en", "Why did the payment fail?", ("declined",)),
    # settings_dark_en
    Case("settings_dark_en", "Is data saver on?", ("off",), forbid=("on",)),
    Case("settings_dark_en", "Is autoplay videos enabled?", ("on",), forbid=("off",)),
    # Chinese
    Case("orders_zh", "哪个订单还在待发货？", ("20240512003", "299.00")),
    Case("orders_zh", "订单 20240512005 的金额是多少？", ("1,050.00",)),
    Case("orders_zh", "一共有几个订单？", ("5",)),
    Case("orders_zh", "这是什么页面？", ("订单列表",)),
    Case("settings_zh", "深色模式开启了吗？", ("开启",), forbid=("关闭",)),
    Case("settings_zh", "消息通知打开了吗？", ("关闭",), forbid=("已开启",)),
    Case("settings_zh", "语言是什么？", ("简体中文",)),
    Case("settings_zh", "蓝牙打开了吗？", cannot=True),
    Case("login_zh", "登录按钮是做什么的？", ("手机号", "密码")),
    Case("login_zh", "这是什么页面？", ("登录",)),
    Case("checkout_zh", "实付款是多少？", ("989.00",)),
    Case("checkout_zh", "运费多少钱？", ("12.00",)),
)

# What a "cannot answer" reply says, in each language (see inference.lite.answer).
CANNOT_MARKERS = ("can't answer", "无法")


def render_screens(folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, build in SCREENS.items():
        path = folder / f"{name}.png"
        build().save(path)
        paths[name] = path
    return paths


if __name__ == "__main__":
    import sys

    out = render_screens(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lite-evalset")
    print(f"{len(out)} screens, {len(CASES)} questions -> {next(iter(out.values())).parent}")
