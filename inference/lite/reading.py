"""A structured reading of a screenshot: headings, fields, buttons, tables, toggles,
status words and the kind of screen, from OCR lines plus (optionally) the pixels.

Pure functions: `read_screen(lines, image)` takes `OcrLine`s and an RGB numpy array (or
None, then only the text layout is used) and returns a `Reading`. Nothing here guesses
content; it only arranges what OCR read.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .ocr import OcrLine, has_cjk, normalise
from .shapes import Shape, classify_regions, is_saturated, text_colour

# --- small vocabularies (normalised keys: lower case, no spaces or punctuation) ---

STATUS_WORDS = {
    # English
    "pending", "shipped", "delivered", "paid", "unpaid", "overdue", "failed", "active",
    "inactive", "enabled", "disabled", "online", "offline", "degraded", "error", "success",
    "completed", "complete", "cancelled", "canceled", "refunded", "processing", "draft",
    "open", "closed", "inprogress", "approved", "rejected", "expired", "suspended",
    "running", "stopped", "healthy", "down", "up", "ok", "warning", "outage",
    "maintenance", "scheduled", "sent", "queued", "archived", "blocked", "verified",
    "unverified", "invited", "ontrack", "atrisk", "late", "returned", "declined",
    # Chinese
    "待发货", "已发货", "已完成", "待付款", "已付款", "已支付", "未支付", "已取消", "处理中",
    "已退款", "失败", "成功", "已签收", "待审核", "已审核", "已拒绝", "运行中", "已停止",
    "正常", "异常", "在线", "离线", "待处理", "已关闭", "进行中", "已过期", "待收货",
    "配送中", "已送达", "退款中", "未发货",
}  # fmt: skip

HEADER_WORDS = {
    "id", "orderid", "order", "customer", "name", "status", "total", "amount", "date",
    "price", "qty", "quantity", "description", "item", "email", "role", "plan", "service",
    "region", "uptime", "created", "updated", "type", "user", "product", "sku", "invoice",
    "due", "duedate", "balance", "unitprice", "method", "actions", "action", "latency",
    "owner", "project", "version", "size", "lastseen", "phone", "country", "team",
    "订单号", "订单编号", "编号", "客户", "状态", "金额", "日期", "合计", "商品", "数量",
    "单价", "操作", "名称", "时间", "下单时间", "用户", "手机号", "价格", "总价", "类型",
}  # fmt: skip

BUTTON_WORDS = {
    "signin", "login", "logon", "signup", "register", "createaccount", "save",
    "savechanges", "cancel", "delete", "remove", "submit", "send", "ok", "confirm",
    "continue", "next", "back", "apply", "update", "search", "close", "done", "pay",
    "paynow", "checkout", "placeorder", "download", "export", "upload", "retry",
    "tryagain", "edit", "add", "create", "new", "yes", "no", "discard", "keepediting",
    "forgotpassword", "forgotyourpassword", "resetpassword", "signout", "logout",
    "subscribe", "upgrade", "learnmore", "view", "details", "reset", "invite",
    "登录", "注册", "保存", "取消", "删除", "提交", "发送", "确定", "确认", "继续", "下一步",
    "返回", "应用", "更新", "搜索", "关闭", "完成", "支付", "立即支付", "去支付", "下载",
    "导出", "上传", "重试", "编辑", "添加", "新建", "忘记密码", "立即登录", "退出登录",
    "保存设置", "保存修改", "获取验证码", "立即注册",
}  # fmt: skip

ERROR_WORDS = (
    "error", "failed", "failure", "invalid", "incorrect", "declined", "denied", "wrong",
    "unable", "cannot", "couldnot", "expired", "notfound", "timeout", "timedout",
    "错误", "失败", "无效", "不正确", "异常", "拒绝", "超时", "过期",
)  # fmt: skip

PASSWORD_WORDS = ("password", "passcode", "密码")

_COLON = re.compile(r"^(?P<label>[^:]{1,40}?)\s*:\s*(?P<value>.+)$")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Field:
    label: OcrLine
    value: OcrLine | None  # None: an empty input
    # For "Status: Pending" read as one OCR line, the split texts.
    label_text: str = ""
    value_text: str = ""
    kind: str = "text"  # "text" | "input" | "password"
    placeholder: str = ""

    @property
    def name(self) -> str:
        return self.label_text or self.label.text.rstrip(":： ")

    @property
    def text(self) -> str:
        if self.value_text:
            return self.value_text
        return self.value.text if self.value is not None else ""


@dataclass(frozen=True)
class Toggle:
    label: OcrLine
    on: bool
    box: tuple[int, int, int, int]
    kind: str = "switch"  # "switch" | "checkbox"

    @property
    def name(self) -> str:
        return self.label.text


@dataclass(frozen=True)
class Button:
    line: OcrLine
    primary: bool = False
    boxed: bool = False  # drawn as a button (fill or outline), not just a text link

    @property
    def name(self) -> str:
        return self.line.text


@dataclass
class Table:
    header: list[OcrLine | None] | None
    rows: list[list[OcrLine | None]]
    columns: list[str]

    def column(self, *keys: str) -> int | None:
        """Index of the first column whose header contains one of the normalised keys."""
        for key in keys:
            for i, name in enumerate(self.columns):
                if key and key in normalise(name):
                    return i
        return None

    def key_column(self) -> int:
        """The column that names a row: an id/number column if there is one, else the first."""
        found = self.column("orderid", "订单号", "编号", "invoice", "id", "#", "order", "单号")
        if found is not None:
            return found
        for i in range(len(self.columns)):
            if any(row[i] is not None for row in self.rows):
                return i
        return 0

    def lines(self) -> Iterable[OcrLine]:
        for row in ([self.header] if self.header else []) + self.rows:
            yield from (cell for cell in row if cell is not None)


@dataclass
class Reading:
    width: int
    height: int
    lines: list[OcrLine]
    title: OcrLine | None = None
    headings: list[OcrLine] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    toggles: list[Toggle] = field(default_factory=list)
    statuses: list[OcrLine] = field(default_factory=list)
    errors: list[OcrLine] = field(default_factory=list)
    dialog: tuple[int, int, int, int] | None = None
    navigation: list[OcrLine] = field(default_factory=list)  # sidebar / top bar text
    kind: str = "screen"
    language: str = "en"  # the language most of the screen's text is in

    def field_named(self, *keys: str) -> Field | None:
        for key in keys:
            for f in self.fields:
                if normalise(f.name) == key:
                    return f
        return None


# --- layout helpers ---


def median_height(lines: Sequence[OcrLine]) -> float:
    return float(statistics.median(line.height for line in lines)) if lines else 16.0


def group_rows(lines: Sequence[OcrLine]) -> list[list[OcrLine]]:
    """Lines whose vertical centres agree, each row sorted left to right."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: ln.cy):
        if rows:
            row = rows[-1]
            row_cy = sum(c.cy for c in row) / len(row)
            row_h = min(c.height for c in row)
            if abs(line.cy - row_cy) <= 0.5 * min(line.height, row_h):
                row.append(line)
                continue
        rows.append([line])
    return [sorted(row, key=lambda ln: ln.x1) for row in rows]


def _columns(rows: Sequence[Sequence[OcrLine]], pad: int = 4) -> list[tuple[int, int]] | None:
    """Merge the x-extents of all cells into column intervals; None if two cells of one row
    would share a column (the rows do not line up as a table)."""
    spans = sorted((c.x1 - pad, c.x2 + pad) for row in rows for c in row)
    merged: list[list[int]] = []
    for x1, x2 in spans:
        if merged and x1 <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], x2)
        else:
            merged.append([x1, x2])
    columns = [(a, b) for a, b in merged]
    for row in rows:
        used = [_column_of(c, columns) for c in row]
        if len(set(used)) != len(used):
            return None
    return columns


def _column_of(line: OcrLine, columns: Sequence[tuple[int, int]]) -> int:
    for i, (a, b) in enumerate(columns):
        if a <= line.cx <= b:
            return i
    return min(
        range(len(columns)), key=lambda i: abs((columns[i][0] + columns[i][1]) / 2 - line.cx)
    )


def _is_header_row(row: Sequence[OcrLine], body: Sequence[Sequence[OcrLine]]) -> bool:
    if any(_DIGIT.search(c.text) for c in row):
        return False
    known = sum(1 for c in row if c.norm in HEADER_WORDS or any(w in c.norm for w in HEADER_WORDS))
    if known * 2 >= len(row):
        return True
    body_digits = sum(1 for r in body if any(_DIGIT.search(c.text) for c in r))
    return bool(body) and body_digits * 2 >= len(body)


def find_tables(
    rows: Sequence[Sequence[OcrLine]], text_height: float, skip: set[int]
) -> tuple[list[Table], list[list[OcrLine]]]:
    """Tables from runs of aligned multi-cell rows. Returns the tables and the two-column
    runs without a header, which read better as label/value pairs than as a table."""
    blocks: list[list[list[OcrLine]]] = []
    current: list[list[OcrLine]] = []
    last_cy = None
    for row in rows:
        # Headings are never table cells: a title row with a button beside it above a table
        # would otherwise be taken for the header.
        cells = [c for c in row if id(c) not in skip and c.height < 1.35 * text_height]
        near = last_cy is not None and cells and cells[0].cy - last_cy <= 3.5 * text_height
        if len(cells) >= 2 and current and near and _columns([*current, cells]) is not None:
            current.append(cells)
        else:
            if current:
                blocks.append(current)
            current = [cells] if len(cells) >= 2 else []
        if cells:
            last_cy = cells[0].cy
    if current:
        blocks.append(current)

    tables, pairs = [], []
    for block in blocks:
        columns = _columns(block)
        if len(block) < 2 or columns is None:
            if len(block) == 1 and len(block[0]) == 2:
                pairs.append(block[0])
            continue
        header_row = block[0] if _is_header_row(block[0], block[1:]) else None
        if len(columns) == 2 and header_row is None:
            pairs.extend(block)
            continue
        if len(columns) < 2:
            continue

        def place(row: Sequence[OcrLine], columns=columns) -> list[OcrLine | None]:
            cells: list[OcrLine | None] = [None] * len(columns)
            for c in row:
                cells[_column_of(c, columns)] = c
            return cells

        header = place(header_row) if header_row else None
        body = [place(r) for r in (block[1:] if header_row else block)]
        names = [
            (header[i].text if header and header[i] is not None else f"column {i + 1}")
            for i in range(len(columns))
        ]
        tables.append(Table(header=header, rows=body, columns=names))
    return tables, pairs


def _split_colon(line: OcrLine) -> tuple[str, str] | None:
    match = _COLON.match(line.text)
    if not match:
        return None
    label, value = match["label"].strip(), match["value"].strip()
    # "10:30" is a time, not "label: value".
    if _DIGIT.search(label[-1:]) and _DIGIT.search(value[:1]):
        return None
    if len(label.split()) > 5 or not value:
        return None
    return label, value


def _same_row(a: OcrLine, b: OcrLine) -> bool:
    return abs(a.cy - b.cy) <= 0.5 * min(a.height, b.height)


def _label_for(shape_box: Sequence[int], lines: Sequence[OcrLine], th: float) -> OcrLine | None:
    """The text a switch or checkbox belongs to: on its row, to its left (a settings row with
    the switch at the far right) or just to its right (a checkbox before its label)."""
    x1, y1, x2, y2 = shape_box
    cy = (y1 + y2) / 2
    best, best_score = None, None
    for line in lines:
        dy = line.cy - cy
        if abs(dy) > max(1.5 * th, (y2 - y1)):
            continue
        if line.x2 <= x1 + 2:
            gap = x1 - line.x2
        elif line.x1 >= x2 - 2 and line.x1 - x2 <= 2.5 * th:
            gap = line.x1 - x2
        else:
            continue
        # Prefer the line level with the switch; a description line below its label is
        # penalised so "Dark mode" wins over "Use a dark theme" under it.
        score = abs(dy) + (th if dy > 0.3 * th else 0) + gap * 0.01
        if best_score is None or score < best_score:
            best, best_score = line, score
    return best


def _input_label(box: Sequence[int], lines: Sequence[OcrLine], th: float) -> OcrLine | None:
    x1, y1, x2, y2 = box
    above = [
        ln
        for ln in lines
        if ln.y2 <= y1 + 2 and y1 - ln.y2 <= 2.2 * th and ln.x1 < x2 and ln.x2 > x1 - th
    ]
    if above:
        return max(above, key=lambda ln: ln.y2)
    left = [ln for ln in lines if ln.x2 <= x1 + 2 and abs(ln.cy - (y1 + y2) / 2) <= th]
    return max(left, key=lambda ln: ln.x2) if left else None


def _looks_masked(text: str) -> bool:
    return bool(text) and all(ch in "•*·.●○∙⋅-_oO0" for ch in text.replace(" ", ""))


# --- the reading ---


def read_screen(lines: Sequence[OcrLine], image: np.ndarray | None = None) -> Reading:
    lines = [ln for ln in lines if ln.text.strip()]
    if image is not None:
        height, width = image.shape[:2]
    else:
        width = max((ln.x2 for ln in lines), default=0)
        height = max((ln.y2 for ln in lines), default=0)
    reading = Reading(width=width, height=height, lines=list(lines))
    if not lines:
        reading.kind = "blank"
        return reading
    text = "".join(ln.text for ln in lines)
    cjk = sum(1 for ch in text if has_cjk(ch))
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    reading.language = "zh" if cjk * 2 >= latin else "en"
    th = median_height(lines)

    shapes: list[Shape] = classify_regions(image, lines, th) if image is not None else []
    dialogs = [s for s in shapes if s.kind == "dialog"]
    if dialogs:
        # A modal owns the screen: the dimmed page behind it is context, not content.
        reading.dialog = max(
            dialogs, key=lambda s: (s.box[2] - s.box[0]) * (s.box[3] - s.box[1])
        ).box
        lines = [ln for ln in lines if _inside(ln.box, reading.dialog)]
        shapes = [s for s in shapes if s.kind != "pane" and _inside(s.box, reading.dialog)]
        reading.lines = list(lines)
    panes = [s.box for s in shapes if s.kind == "pane"]
    reading.navigation = [ln for ln in lines if any(_inside(ln.box, p) for p in panes)]
    nav_ids = {id(ln) for ln in reading.navigation}
    main = [ln for ln in lines if id(ln) not in nav_ids] or list(lines)
    used: set[int] = set()  # ids of lines already explained as labels/values/buttons

    # Buttons: drawn ones (fill or outline around one short line), then text-only ones whose
    # words are a button verb ("Forgot password?" links, flat "Cancel").
    for shape in shapes:
        if (
            shape.kind == "button"
            and shape.line is not None
            and len(shape.line.text) <= 32
            and shape.line.norm not in STATUS_WORDS  # a coloured status badge, not a button
            and not any(_inside(shape.box, p) for p in panes)  # the selected nav item
        ):
            reading.buttons.append(Button(shape.line, primary=shape.saturated, boxed=True))
    boxed = {id(b.line) for b in reading.buttons}
    for line in lines:
        if id(line) not in boxed and line.norm in BUTTON_WORDS:
            reading.buttons.append(Button(line, primary=False, boxed=False))

    # Toggles.
    for shape in shapes:
        if shape.kind not in ("switch", "checkbox"):
            continue
        label = _label_for(shape.box, lines, th)
        if label is not None and all(t.label is not label for t in reading.toggles):
            reading.toggles.append(Toggle(label, bool(shape.on), shape.box, shape.kind))
            used.add(id(label))

    # Input boxes and their labels.
    for shape in shapes:
        if shape.kind != "input" or any(_inside(shape.box, p) for p in panes):
            continue
        label = _input_label(shape.box, [ln for ln in lines if ln is not shape.line], th)
        if label is None or id(label) in used:
            continue
        password = any(w in label.norm for w in PASSWORD_WORDS)
        value, placeholder = shape.line, ""
        if value is not None and image is not None:
            colour, contrast = text_colour(image, value)
            # Placeholder text is light grey; typed text is dark (or light on dark themes).
            if contrast < 120 and not is_saturated(colour):
                placeholder, value = value.text, None
        if value is not None and password and _looks_masked(value.text):
            value = None
        reading.fields.append(
            Field(label, value, kind="password" if password else "input", placeholder=placeholder)
        )
        used.add(id(label))
        if shape.line is not None:
            used.add(id(shape.line))

    # Inline "Label: value" lines.
    for line in lines:
        if id(line) in used:
            continue
        split = _split_colon(line)
        if split:
            reading.fields.append(Field(line, line, label_text=split[0], value_text=split[1]))
            used.add(id(line))

    button_ids = {id(b.line) for b in reading.buttons}
    # A "Label:" line with its value to the right on the same row, or just below it.
    for line in lines:
        if id(line) in used or not line.text.rstrip().endswith((":", "：")):
            continue
        right = [ln for ln in lines if ln.x1 > line.x2 and _same_row(ln, line)]
        below = [
            ln
            for ln in lines
            if ln.y1 >= line.y2 - 2 and ln.y1 - line.y2 <= 1.2 * th and abs(ln.x1 - line.x1) < th
        ]
        value = min(right, key=lambda ln: ln.x1) if right else (below[0] if below else None)
        if value is not None and id(value) not in used:
            reading.fields.append(Field(line, value))
            used.update((id(line), id(value)))
        elif value is None:
            # "Password:" with nothing after it: a field left empty (or masked).
            kind = "password" if any(w in line.norm for w in PASSWORD_WORDS) else "text"
            reading.fields.append(Field(line, None, kind=kind))
            used.add(id(line))

    skip = used | {id(t.label) for t in reading.toggles}
    tables, pairs = find_tables(group_rows(main), th, skip=skip)
    for pane in panes:
        pane_lines = [ln for ln in reading.navigation if _inside(ln.box, pane)]
        more, _ = find_tables(group_rows(pane_lines), th, skip=skip)
        tables.extend(more)
    reading.tables = tables
    for pair in pairs:
        label, value = pair[0], pair[-1]
        if id(label) in used or id(value) in used or id(label) in button_ids:
            continue
        if label.height >= 1.3 * th:  # a heading with a badge beside it, not a label
            continue
        if value.x1 - label.x2 < 0.8 * th:
            continue
        reading.fields.append(Field(label, value))
        used.update((id(label), id(value)))
    # Summary rows under a table ("Subtotal ... $90.00" aligned with the amount column).
    for table in tables:
        key = table.key_column()
        for row in list(table.rows):
            present = [c for c in row if c is not None]
            if len(present) != 2 or len(table.columns) < 3 or row[key] is not None:
                continue
            if _DIGIT.search(present[1].text) and present[0].norm not in STATUS_WORDS:
                reading.fields.append(Field(present[0], present[1]))
                table.rows.remove(row)
        _drop_empty_columns(table)

    # Headings: clearly taller text. The title is the tallest near the top (or in the dialog).
    reading.headings = [
        ln
        for ln in lines
        if ln.height >= 1.3 * th and id(ln) not in button_ids and len(ln.text) > 1
    ]
    scope = main
    lowest = max(ln.y1 for ln in scope)
    top = [ln for ln in scope if ln.y1 <= scope[0].y1 + (lowest - scope[0].y1) * 0.6 + 1] or scope
    top = [ln for ln in top if id(ln) not in button_ids] or top
    tallest = max(ln.height for ln in top)
    reading.title = min((ln for ln in top if ln.height >= tallest * 0.9), key=lambda ln: ln.y1)

    reading.statuses = [ln for ln in lines if ln.norm in STATUS_WORDS]
    reading.errors = _error_lines(lines, image)
    reading.kind = _screen_kind(reading)
    return reading


def _inside(box: Sequence[int], outer: Sequence[int], slack: int = 2) -> bool:
    return (
        box[0] >= outer[0] - slack
        and box[1] >= outer[1] - slack
        and box[2] <= outer[2] + slack
        and box[3] <= outer[3] + slack
    )


def _drop_empty_columns(table: Table) -> None:
    keep = [
        i
        for i in range(len(table.columns))
        if any(row[i] is not None for row in table.rows)
        or (table.header is not None and table.header[i] is not None)
    ]
    if len(keep) == len(table.columns):
        return
    table.columns = [table.columns[i] for i in keep]
    table.rows = [[row[i] for i in keep] for row in table.rows]
    if table.header is not None:
        table.header = [table.header[i] for i in keep]


def _error_lines(lines: Sequence[OcrLine], image: np.ndarray | None) -> list[OcrLine]:
    found = []
    for line in lines:
        # Status badges and amounts are often red too; they are not error messages.
        if line.norm in STATUS_WORDS or not re.search(r"[^\W\d_]{3}", line.text):
            continue
        if any(w in line.norm for w in ERROR_WORDS):
            found.append(line)
        elif image is not None and len(line.text) > 6:
            (r, g, b), contrast = text_colour(image, line)
            # Red text is how most UIs say "something is wrong".
            if r > 150 and g < 110 and b < 110 and contrast > 60:
                found.append(line)
    return found


def _any_word(reading: Reading, words: Iterable[str]) -> bool:
    keys = tuple(words)
    return any(any(k in ln.norm for k in keys) for ln in reading.lines)


def _screen_kind(reading: Reading) -> str:
    buttons = {b.line.norm for b in reading.buttons}
    title = reading.title.norm if reading.title else ""
    if reading.dialog is not None:
        return "dialog"
    login_buttons = {"signin", "login", "logon", "登录", "立即登录"}
    has_password = any(f.kind == "password" for f in reading.fields) or _any_word(
        reading, PASSWORD_WORDS
    )
    if has_password and (buttons & login_buttons or any(k in title for k in login_buttons)):
        return "login form"
    if has_password and buttons & {"signup", "register", "createaccount", "注册", "立即注册"}:
        return "sign-up form"
    settings_words = ("settings", "preferences", "设置", "偏好")
    if len(reading.toggles) >= 2 or any(w in title for w in settings_words):
        return "settings"
    if _any_word(reading, ("invoice", "receipt", "发票", "收据")):
        return "invoice"
    if any(len(t.rows) >= 2 for t in reading.tables):
        return "table"
    if reading.errors and len(reading.lines) <= 12:
        return "error message"
    if sum(1 for f in reading.fields if f.kind in ("input", "password")) >= 2:
        return "form"
    if reading.fields:
        return "details"
    return "screen"
