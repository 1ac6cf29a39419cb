"""Question + Reading -> the facts that answer it, or an explicit "cannot answer".

The reading decides the content: every value in an `Answer` was read off the screen, and
the deterministic `template` sentence states exactly those values. `phrasing` may reword
the template with SmolLM2 but must keep its facts; when no rule applies the outcome is
"cannot_answer" instead of a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .ocr import OcrLine, has_cjk, normalise
from .reading import STATUS_WORDS, Button, Field, Reading, Table, Toggle, median_height

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass
class Answer:
    outcome: str  # "answer" | "cannot_answer" | "needs_screenshot"
    language: str  # "en" | "zh": the question's language
    template: str  # a complete, correct answer sentence built from the facts
    intent: str = ""
    facts: list[Fact] = field(default_factory=list)
    # Strings a reworded answer must still contain (compared with `normalise`).
    required: list[str] = field(default_factory=list)
    grounding: list[tuple[Box, str]] = field(default_factory=list)  # boxes that back the answer


# --- question analysis ---

_STOP = set(
    "a an the is are was were be been am do does did of to in on at for with by from and or "
    "this that these those it its it's what which who whom whose when where why how can could "
    "should would will shall i me my we our you your they them their there here screen page "
    "please tell show shown showing say says said about any some all much many still currently "
    "now today ok yes no not has have had get got into out up as if then than so just one".split()
)
_ZH_STOP = ("什么", "多少", "是否", "这个", "页面", "哪个", "哪些", "一下", "请问", "现在", "还在")

DESCRIBE_EN = re.compile(
    r"\bwhat(?:'s| is| are)? (?:this|that|these)\b|\bwhat am i (?:looking at|seeing)\b|"
    r"\bdescribe\b|\bsummari[sz]e\b|\bwhat(?:'s| is) (?:on|shown on) (?:the|this|my) screen\b|"
    r"\bwhere am i\b|\bwhat (?:screen|page|app|window|dialog) is\b|\bwhat kind of\b"
)
DESCRIBE_ZH = ("这是什么", "什么页面", "什么界面", "描述", "概括", "哪个页面", "什么窗口", "这是哪")
BUTTON_EN = re.compile(r"\bbuttons?\b|\b(?:click|clicking|press|pressing|tap|tapping|hit)\b")
BUTTON_ZH = ("按钮", "点击", "点了", "按下", "点一下", "按了")
PURPOSE_EN = re.compile(r"\bwhat (?:does|will|would|happens)\b|\bwhat is .* for\b|\bpurpose\b")
PURPOSE_ZH = ("做什么", "干什么", "有什么用", "什么作用", "会怎样", "会发生", "用来")
TOGGLE_EN = re.compile(
    r"\b(?:on|off|enabled?|disabled?|turned|switched|checked|ticked|activated)\b"
)
TOGGLE_ZH = ("开启", "打开", "关闭", "启用", "开着", "关着", "勾选", "开了", "关了", "禁用")
COUNT_EN = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b")
COUNT_ZH = (
    "几个",
    "多少个",
    "几条",
    "多少条",
    "几项",
    "多少项",
    "几笔",
    "多少笔",
    "几行",
    "多少行",
)
ERROR_EN = re.compile(r"\b(?:why|error|wrong|fail(?:ed|s|ure)?|problem|issue|declined)\b")
ERROR_ZH = ("为什么", "错误", "失败", "出错", "问题", "原因", "报错")
TITLE_EN = re.compile(r"\b(?:title|heading|header)\b")
TITLE_ZH = ("标题",)

# Question words that point at a kind of value, for fields/columns named differently.
SYNONYMS = {
    "total": ("total", "amountdue", "grandtotal", "balance", "合计", "总计", "实付", "应付"),
    "how much": ("total", "amount", "price", "合计", "金额", "实付款"),
    "cost": ("total", "amount", "price"),
    "owe": ("total", "amountdue", "balance"),
    "when": ("date", "due", "time", "日期", "时间"),
    "due": ("duedate", "due"),
    "多少钱": ("金额", "合计", "实付", "价格", "总价", "单价"),
    "金额": ("金额", "合计", "实付", "总价"),
    "价格": ("价格", "单价", "金额"),
    "时间": ("时间", "日期"),
}
MONEY_KEYS = ("total", "amount", "price", "金额", "合计", "总价", "实付", "价格")

KIND_EN = {
    "login form": "a login form",
    "sign-up form": "a sign-up form",
    "settings": "a settings screen",
    "dialog": "a dialog",
    "invoice": "an invoice",
    "table": "a table",
    "error message": "an error message",
    "form": "a form",
    "details": "a details screen",
    "screen": "a screen",
    "blank": "an empty screen",
}
KIND_ZH = {
    "login form": "登录页面",
    "sign-up form": "注册页面",
    "settings": "设置页面",
    "dialog": "对话框",
    "invoice": "发票",
    "table": "列表页面",
    "error message": "错误提示",
    "form": "表单页面",
    "details": "详情页面",
    "screen": "页面",
    "blank": "空白页面",
}


def question_language(question: str) -> str:
    return "zh" if has_cjk(question) else "en"


class _Question:
    def __init__(self, text: str):
        self.text = text
        self.lower = text.casefold()
        self.norm = normalise(text)
        self.zh = has_cjk(text)
        self.words = re.findall(r"[a-z0-9]+", self.lower)
        self.wordset = set(self.words)
        self.keywords = [w for w in self.words if w not in _STOP and len(w) >= 3]

    def has(self, pattern: re.Pattern, zh_words: Sequence[str]) -> bool:
        return bool(pattern.search(self.lower)) or any(w in self.text for w in zh_words)

    def mentions(self, norm: str) -> bool:
        """Does the question name this screen text (compared without spaces/punctuation)?"""
        if not norm:
            return False
        if norm.isascii() and len(norm) <= 3:
            return norm in self.wordset
        return norm in self.norm

    def mention_score(self, text: str) -> float:
        """How strongly the question names `text`: 1 for the whole text, less for some of its
        words ("tax" for "Tax (8%)", "due" for "Due date"), 0 for nothing."""
        norm = normalise(text)
        if self.mentions(norm):
            return 1.0 + len(norm) / 100
        words = [w for w in re.findall(r"[a-z]+", text.casefold()) if w not in _STOP and len(w) > 2]
        if words:
            hits = sum(1 for w in words if w in self.wordset or w.rstrip("s") in self.wordset)
            if hits:
                return 0.5 * hits / len(words)
        if has_cjk(text) and len(norm) >= 2:
            # Chinese: a two-character piece of the label in the question ("付款" of "实付款").
            pieces = {norm[i : i + 2] for i in range(len(norm) - 1)}
            hits = sum(1 for p in pieces if p in self.norm and p not in _ZH_STOP)
            if hits:
                return 0.4 * hits / len(pieces)
        return 0.0


# --- helpers to build answers ---


def _quote(text: str, zh: bool) -> str:
    return f"「{text}」" if zh else f"“{text}”"


def _join(items: Sequence[str], zh: bool) -> str:
    items = list(items)
    if zh:
        return "、".join(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _display(text: str, question: _Question) -> str:
    """Screen text as the user wrote it when the question names it: OCR often drops the
    spaces ("Darkmode"), and the question usually has them."""
    norm = normalise(text)
    if not norm or norm not in question.norm or not text.isascii():
        return text
    # Find the question's span whose normalised form equals the label.
    chars = [(i, ch) for i, ch in enumerate(question.text) if normalise(ch)]
    keys = "".join(normalise(ch) for _, ch in chars)
    start = keys.find(norm)
    if start < 0:
        return text
    span = question.text[chars[start][0] : chars[start + len(norm) - 1][0] + 1]
    # Keep the screen's capitalisation of the first letter ("Dark mode", not "dark mode").
    return text[0] + span[1:] if span and span[0].lower() == text[0].lower() else span


def _end(sentence: str) -> str:
    """Close a sentence with a full stop unless a quoted sentence already ended it."""
    return sentence if sentence.endswith((".”", "?”", "!”", ".", "?", "!")) else sentence + "."


def _ground(*lines: OcrLine | None) -> list[tuple[Box, str]]:
    return [(line.box, line.text) for line in lines if line is not None]


def _cannot(reading: Reading, q: _Question, why: str = "") -> Answer:
    title = reading.title.text if reading.title else ""
    if q.zh:
        shows = f"截图显示的是{KIND_ZH.get(reading.kind, '页面')}"
        shows += _quote(title, True) if title else ""
        text = f"无法从这张截图回答这个问题{('：' + why) if why else ''}。{shows}。"
    else:
        shows = f"It shows {KIND_EN.get(reading.kind, 'a screen')}"
        shows += f", {_quote(title, False)}" if title else ""
        text = f"I can't answer that from this screenshot{(': ' + why) if why else ''}. {shows}."
    return Answer("cannot_answer", "zh" if q.zh else "en", text, intent="cannot")


def needs_screenshot(question: str) -> Answer:
    if has_cjk(question):
        text = "我需要一张截图才能回答：请上传截图后再问。"
    else:
        text = "I need a screenshot to answer that: please attach one and ask again."
    return Answer("needs_screenshot", question_language(question), text, intent="no_image")


def _answer(q: _Question, intent: str, text: str, facts, grounding) -> Answer:
    required = [f.value for f in facts if normalise(f.value)]
    return Answer(
        "answer",
        "zh" if q.zh else "en",
        text,
        intent=intent,
        facts=list(facts),
        required=required,
        grounding=grounding,
    )


# --- the intents, tried in order ---


def answer_question(question: str, reading: Reading) -> Answer:
    q = _Question(question.strip())
    if not reading.lines:
        return _cannot(
            reading, q, "没有读到任何文字" if q.zh else "I could not read any text on it"
        )
    for rule in (
        _describe,
        _button,
        _toggle,
        _count,
        _row_lookup,
        _status_filter,
        _field_lookup,
        _status_words,
        _error,
        _title,
        _quote_line,
    ):
        answer = rule(q, reading)
        if answer is not None:
            return answer
    return _cannot(reading, q)


def _describe(q: _Question, r: Reading) -> Answer | None:
    if not (q.has(DESCRIBE_EN, DESCRIBE_ZH) or not q.text):
        return None
    # "What is this button for?" is about the button, not the screen.
    if q.has(BUTTON_EN, BUTTON_ZH):
        return None
    zh = q.zh or (not q.text and r.language == "zh")
    title = r.title.text if r.title else ""
    facts = [Fact("kind", r.kind)] + ([Fact("title", title)] if title else [])
    parts: list[str] = []
    grounding = _ground(r.title)
    if r.kind == "dialog":
        message = _paragraphs([ln for ln in r.lines if ln is not r.title and not _is_button(r, ln)])
        if message:
            parts.append(f"{'内容：' if zh else 'the message '}{_quote(message[0][0], zh)}")
            grounding += _ground(*message[0][1])
    table = max(r.tables, key=lambda t: len(t.rows), default=None)
    if table is not None and len(table.rows) >= 2 and r.kind in ("table", "invoice"):
        cols = [c for c in table.columns if not c.startswith("column ")]
        facts.append(Fact("rows", str(len(table.rows))))
        if zh:
            parts.append(
                f"{len(table.rows)} 行数据" + (f"，列有：{_join(cols, True)}" if cols else "")
            )
        else:
            parts.append(
                f"{len(table.rows)} rows" + (f" (columns: {_join(cols, False)})" if cols else "")
            )
    inputs = [f.name for f in r.fields if f.kind in ("input", "password")]
    if inputs:
        parts.append(f"{_join(inputs, True)}输入框" if zh else f"{_join(inputs, False)} fields")
    if r.toggles:
        states = [f"{t.name}（{_on_zh(t)}）" if zh else f"{t.name} ({_on(t)})" for t in r.toggles]
        noun = "switches" if any(t.kind == "switch" for t in r.toggles) else "options"
        parts.append(("选项：" if zh else f"{noun} ") + _join(states, zh))
        grounding += _ground(*(t.label for t in r.toggles))
    buttons = [b.name for b in r.buttons if b.boxed][:3]
    if buttons:
        quoted = [_quote(b, zh) for b in buttons]
        noun = "button" if len(quoted) == 1 else "buttons"
        parts.append(f"按钮{_join(quoted, True)}" if zh else f"{_join(quoted, False)} {noun}")
        grounding += _ground(*(b.line for b in r.buttons if b.boxed))
    if zh:
        head = f"这是{KIND_ZH.get(r.kind, '页面')}" + (_quote(title, True) if title else "")
        text = head + ("，包含" + "；".join(parts) if parts else "") + "。"
    else:
        head = f"This is {KIND_EN.get(r.kind, 'a screen')}" + (
            f", {_quote(title, False)}" if title else ""
        )
        text = head + (", with " + "; ".join(parts) if parts else "") + "."
    answer = _answer(q, "describe", text, facts, grounding)
    answer.required = [title] if title else []
    return answer


def _on(t: Toggle) -> str:
    if t.kind == "checkbox":
        return "checked" if t.on else "unchecked"
    return "on" if t.on else "off"


def _on_zh(t: Toggle) -> str:
    if t.kind == "checkbox":
        return "已勾选" if t.on else "未勾选"
    return "开" if t.on else "关"


def _is_button(r: Reading, line: OcrLine) -> bool:
    return any(b.line is line for b in r.buttons)


def _paragraphs(lines: Sequence[OcrLine]) -> list[tuple[str, list[OcrLine]]]:
    """Join wrapped lines (same left edge, same size, close together) into paragraphs."""
    out: list[tuple[str, list[OcrLine]]] = []
    th = median_height(lines) if lines else 16
    for line in sorted(lines, key=lambda ln: (ln.y1, ln.x1)):
        if out:
            last = out[-1][1][-1]
            if (
                abs(line.x1 - last.x1) <= 0.6 * th
                and 0 <= line.y1 - last.y2 <= 0.9 * th
                and abs(line.height - last.height) <= 0.3 * th
            ):
                sep = "" if has_cjk(line.text[:1]) else " "
                out[-1] = (out[-1][0] + sep + line.text, [*out[-1][1], line])
                continue
        out.append((line.text, [line]))
    return out


def _button(q: _Question, r: Reading) -> Answer | None:
    asked = q.has(BUTTON_EN, BUTTON_ZH) or q.has(PURPOSE_EN, PURPOSE_ZH)
    if not asked or not r.buttons:
        return None
    named = [(q.mention_score(b.name), b) for b in r.buttons]
    named = [(s, b) for s, b in named if s >= 1.0]
    if named:
        button = max(named, key=lambda sb: (sb[0], sb[1].boxed))[1]
    elif q.has(BUTTON_EN, BUTTON_ZH):
        primary = [b for b in r.buttons if b.primary]
        if len(primary) != 1:
            return None
        button = primary[0]
    else:
        return None
    zh = q.zh
    text, facts, grounding = _purpose(button, r, zh)
    return _answer(q, "button", text, facts, grounding)


# Button verbs -> what they do, with {fields}/{title}/{message} filled from the screen.
_PURPOSES_EN = (
    (("signin", "login", "logon"), "signs you in with the {fields} entered in the form"),
    (("signup", "register", "createaccount"), "creates an account with the {fields} entered"),
    (("save", "savechanges", "update", "apply"), "saves the changes to {fields}"),
    (("cancel", "close", "discard", "no", "keepediting"), "closes {this} without applying it"),
    (("delete", "remove"), "confirms the deletion"),
    (("submit", "send", "continue", "next", "ok", "confirm", "yes", "done"), "submits {this}"),
    (("search",), "runs the search"),
    (("pay", "paynow", "checkout", "placeorder"), "pays {amount}"),
    (("tryagain", "retry"), "tries the failed action again"),
    (("forgotpassword", "forgotyourpassword", "resetpassword"), "starts a password reset"),
    (("export", "download"), "downloads {this} as a file"),
    (("signout", "logout"), "signs you out"),
)
_PURPOSES_ZH = (
    (("登录", "立即登录"), "会用填写的{fields}登录"),
    (("注册", "立即注册"), "会用填写的{fields}注册账号"),
    (("保存", "保存设置", "保存修改", "更新", "应用"), "会保存对{fields}的修改"),
    (("取消", "关闭", "返回"), "会关闭{this}，不做更改"),
    (("删除",), "会确认删除"),
    (("提交", "确定", "确认", "继续", "下一步", "完成", "发送"), "会提交{this}"),
    (("提交订单", "支付", "立即支付", "去支付"), "会提交并支付{amount}"),
    (("搜索",), "会执行搜索"),
    (("忘记密码",), "会进入找回密码流程"),
    (("导出", "下载", "导出订单"), "会把{this}导出为文件"),
    (("重试",), "会重新尝试刚才失败的操作"),
)


def _purpose(button: Button, r: Reading, zh: bool) -> tuple[str, list[Fact], list]:
    key = button.line.norm
    title = r.title.text if r.title else ""
    # The inputs a button submits; without pixels (no input boxes seen) any labelled field.
    boxed = any(f.kind == "input" for f in r.fields)
    field_names = [f.name for f in r.fields if not boxed or f.kind in ("input", "password")] or [
        t.name for t in r.toggles
    ]
    amount_field = next(
        (
            f
            for f in r.fields
            if any(k in normalise(f.name) for k in ("total", "合计", "实付", "应付"))
        ),
        None,
    )
    facts = [Fact("button", button.name)]
    grounding = _ground(button.line)
    action = None
    for keys, phrase in _PURPOSES_ZH if zh else _PURPOSES_EN:
        if key in keys or any(key.startswith(k) for k in keys if len(k) > 3):
            action = phrase
    if zh and key in ("提交订单",) and amount_field is None:
        action = "会提交{this}"
    fields_text = _join(field_names, zh) if field_names else ("信息" if zh else "details")
    this = _quote(title, zh) if title else ("当前页面" if zh else "this screen")
    amount = amount_field.text if amount_field else ("订单" if zh else "the amount shown")
    if action is None:
        action = "会执行{this}上的这个操作" if zh else "performs this action on {this}"
    sentence = action.format(fields=fields_text, this=this, amount=amount)
    if field_names and "{fields}" in action:
        facts += [Fact("field", n) for n in field_names]
        grounding += _ground(*(f.label for f in r.fields if f.name in field_names))
    if amount_field is not None and "{amount}" in action:
        facts.append(Fact("amount", amount_field.text))
        grounding += _ground(amount_field.value)
    if zh:
        text = f"{_quote(button.name, True)}按钮{sentence}。"
    else:
        text = f"The {_quote(button.name, False)} button {sentence}."
    if r.kind == "dialog":
        body = _paragraphs([ln for ln in r.lines if ln is not r.title and not _is_button(r, ln)])
        if body:
            message = body[0][0]
            text += (
                f"对话框写着：{_quote(message, True)}。"
                if zh
                else _end(f" The dialog says: {_quote(message, False)}")
            )
            facts.append(Fact("message", message))
            grounding += _ground(r.title, *body[0][1])
    return text, facts, grounding


def _toggle(q: _Question, r: Reading) -> Answer | None:
    if not r.toggles:
        if q.has(TOGGLE_EN, TOGGLE_ZH) and r.kind == "settings":
            return _cannot(r, q)
        return None
    scored = [(q.mention_score(t.name), t) for t in r.toggles]
    best = max(scored, key=lambda st: st[0])
    zh = q.zh
    if best[0] >= 0.5:
        t = best[1]
        name = _display(t.name, q)
        if zh:
            state = (
                ("已勾选" if t.on else "未勾选")
                if t.kind == "checkbox"
                else ("已开启" if t.on else "已关闭")
            )
            text = f"{_quote(name, True)}{state}。"
        else:
            noun = "checkbox" if t.kind == "checkbox" else "switch"
            text = f"The {_quote(name, False)} {noun} is {_on(t)}."
            state = _on(t)
        grounding = [*_ground(t.label), (t.box, state)]
        return _answer(q, "toggle", text, [Fact(t.name, state)], grounding)
    if not q.has(TOGGLE_EN, TOGGLE_ZH):
        return None
    # "Which plan is selected?" names a field: let the field rules answer it.
    if any(q.mention_score(f.name) >= 1.0 for f in r.fields):
        return None
    # "Which settings are on?" / "哪些设置是开启的？"
    listing = re.search(r"\b(?:which|what|list)\b", q.lower) or any(
        w in q.text for w in ("哪些", "哪几", "哪个")
    )
    if not listing:
        return _cannot(r, q, "没有找到这个开关" if zh else "it shows no switch with that name")
    want_off = bool(re.search(r"\b(?:off|disabled)\b", q.lower)) or any(
        w in q.text for w in ("关闭", "关着", "禁用")
    )
    picked = [t for t in r.toggles if t.on != want_off]
    names = [t.name for t in picked]
    if zh:
        state = "关闭" if want_off else "开启"
        text = f"{'已' + state + '的有' if names else '没有' + state + '的设置'}{('：' + _join(names, True)) if names else ''}。"
    else:
        state = "off" if want_off else "on"
        text = (
            f"These are {state}: {_join(names, False)}."
            if names
            else f"None of the switches is {state}."
        )
    facts = [Fact(n, state) for n in names]
    grounding = [g for t in picked for g in [*_ground(t.label), (t.box, state)]]
    answer = _answer(q, "toggle_list", text, facts, grounding)
    answer.required = names
    return answer


def _biggest_table(r: Reading) -> Table | None:
    return max(r.tables, key=lambda t: len(t.rows), default=None)


def _count(q: _Question, r: Reading) -> Answer | None:
    if not q.has(COUNT_EN, COUNT_ZH):
        return None
    table = _biggest_table(r)
    if table is None or len(table.rows) < 1:
        return None
    # "How many files will be deleted?" on a screen whose table is about something else is
    # answered from the text instead (see _quote_line).
    noun = re.search(r"how many ([a-z]+)|number of ([a-z]+)", q.lower)
    rows = table.rows
    status = _status_in_question(q, table)
    if status is not None:
        col, word = status
        rows = [row for row in rows if row[col] is not None and row[col].norm == word]
    n = len(rows)
    if noun and not q.zh:
        thing = noun.group(1) or noun.group(2)
        related = normalise(thing).rstrip("s")
        if related and not _table_is_about(table, r, related) and status is None:
            return None
        text = (
            f"There are {n} {thing} in the table."
            if n != 1
            else f"There is 1 {thing.rstrip('s')} in the table."
        )
    else:
        text = f"表格中共有 {n} 条记录。"
    grounding = [g for row in rows for g in _ground(row[table.key_column()])]
    return _answer(q, "count", text, [Fact("count", str(n))], grounding)


def _table_is_about(table: Table, r: Reading, noun: str) -> bool:
    texts = [*table.columns, r.title.text if r.title else "", *(ln.text for ln in r.lines)]
    return any(noun in normalise(t) for t in texts) or noun in (
        "row",
        "item",
        "entrie",
        "record",
        "line",
    )


def _status_in_question(q: _Question, table: Table) -> tuple[int, str] | None:
    """A status word of the question that appears in some column of the table."""
    words = {w for w in STATUS_WORDS if q.mentions(w)}
    if not words:
        return None
    # "unpaid" also contains "paid": prefer the longest word the question names.
    for word in sorted(words, key=len, reverse=True):
        for col in range(len(table.columns)):
            if any(row[col] is not None and row[col].norm == word for row in table.rows):
                return col, word
    return None


def _row_name(table: Table, row: Sequence[OcrLine | None]) -> OcrLine | None:
    return row[table.key_column()]


def _money_column(table: Table) -> int | None:
    return table.column(*MONEY_KEYS)


def _status_filter(q: _Question, r: Reading) -> Answer | None:
    for table in sorted(r.tables, key=lambda t: -len(t.rows)):
        found = _status_in_question(q, table)
        if found is None:
            continue
        col, word = found
        rows = [row for row in table.rows if row[col] is not None and row[col].norm == word]
        key, money = table.key_column(), _money_column(table)
        status_text = rows[0][col].text
        facts, parts, grounding = [], [], []
        for row in rows:
            name = row[key]
            if name is None:
                continue
            facts.append(Fact(table.columns[key], name.text))
            grounding += _ground(name, row[col])
            extra = ""
            if money is not None and money != col and row[money] is not None:
                facts.append(Fact(table.columns[money], row[money].text))
                grounding += _ground(row[money])
                label = table.columns[money]
                extra = (
                    f"，{label}为 {row[money].text}"
                    if q.zh
                    else f" ({label.lower()} {row[money].text})"
                )
            parts.append(f"{name.text}{extra}")
        if not parts:
            continue
        if q.zh:
            text = f"状态为{_quote(status_text, True)}的是 {'；'.join(parts)}。"
        elif len(parts) == 1:
            text = f"{parts[0]} is {status_text}."
        else:
            text = f"{len(parts)} are {status_text}: {_join(parts, False)}."
        return _answer(q, "status_filter", text, facts, grounding)
    return None


def _column_asked(q: _Question, table: Table, skip: int | None) -> int | None:
    best, best_score = None, 0.0
    for i, name in enumerate(table.columns):
        if i == skip or name.startswith("column "):
            continue
        score = q.mention_score(name)
        for word, keys in SYNONYMS.items():
            if (word in q.lower if word.isascii() else word in q.text) and any(
                k in normalise(name) for k in keys
            ):
                score = max(score, 0.6)
        if score > best_score:
            best, best_score = i, score
    return best if best_score >= 0.5 else None


def _row_lookup(q: _Question, r: Reading) -> Answer | None:
    for table in sorted(r.tables, key=lambda t: -len(t.rows)):
        key = table.key_column()
        hits = []
        for row in table.rows:
            for i, cell in enumerate(row):
                if cell is not None and len(cell.norm) >= 2 and q.mentions(cell.norm):
                    # The row's name beats any other cell; longer matches beat shorter ones.
                    hits.append(((i == key, len(cell.norm)), row, i))
        if not hits:
            continue
        _, row, matched = max(hits, key=lambda h: h[0])
        if row[matched].norm in STATUS_WORDS:
            continue  # "which order is pending": a filter, not a lookup
        name = row[key] or row[matched]
        col = _column_asked(q, table, skip=matched)
        if col is not None and row[col] is not None:
            cell = row[col]
            label = table.columns[col]
            if q.zh:
                text = f"{name.text} 的{label}是 {cell.text}。"
            else:
                text = f"The {label.lower()} of {name.text} is {cell.text}."
            return _answer(q, "row_lookup", text, [Fact(label, cell.text)], _ground(name, cell))
        # No column named: the whole row.
        facts = [
            Fact(table.columns[i], c.text)
            for i, c in enumerate(row)
            if c is not None and not table.columns[i].startswith("column ")
        ]
        if not facts:
            continue
        body = ("，" if q.zh else ", ").join(
            f"{f.label}{'：' if q.zh else ': '}{f.value}" for f in facts
        )
        text = f"{name.text}：{body}。" if q.zh else f"{name.text}: {body}."
        return _answer(q, "row_lookup", text, facts, _ground(*row))
    return None


def _field_lookup(q: _Question, r: Reading) -> Answer | None:
    best: tuple[float, Field] | None = None
    for f in r.fields:
        score = q.mention_score(f.name)
        for word, keys in SYNONYMS.items():
            if (word in q.lower if word.isascii() else word in q.text) and normalise(
                f.name
            ) in keys:
                # Weaker than naming the field: "how much is the tax" is about "Tax".
                score = max(score, 0.45)
        if score > 0 and (best is None or score > best[0]):
            best = (score, f)
    if best is None or best[0] < 0.4:
        return None
    f = best[1]
    name = _display(f.name, q)
    if f.kind == "password":
        text = (
            "密码是隐藏的，截图里看不到。"
            if q.zh
            else "The password is hidden, so the screenshot does not show it."
        )
        return _answer(q, "field", text, [], _ground(f.label))
    if not f.text:
        hint = f.placeholder
        if q.zh:
            text = (
                f"{_quote(name, True)}是空的"
                + (f"（提示文字：{_quote(hint, True)}）" if hint else "")
                + "。"
            )
        else:
            text = (
                f"The {_quote(name, False)} field is empty"
                + (f" (placeholder: {_quote(hint, False)})" if hint else "")
                + "."
            )
        return _answer(q, "field", text, [Fact(f.name, "")], _ground(f.label))
    text = f"{name}是 {f.text}。" if q.zh else f"The {_lower_label(name)} is {f.text}."
    return _answer(q, "field", text, [Fact(f.name, f.text)], _ground(f.label, f.value))


def _lower_label(name: str) -> str:
    # "Due date" -> "due date", but keep acronyms and names ("VAT", "iPhone").
    return name[0].lower() + name[1:] if name[:1].isupper() and not name[1:2].isupper() else name


def _status_words(q: _Question, r: Reading) -> Answer | None:
    """ "Is this invoice paid?": the status badges of a screen that is not a table."""
    asked = {w for w in STATUS_WORDS if q.mentions(w)} or (
        {"status"} if ("status" in q.wordset or "状态" in q.text) else set()
    )
    in_tables = {id(c) for t in r.tables for c in t.lines()}
    shown = [ln for ln in r.statuses if id(ln) not in in_tables]
    if not asked or not shown:
        return None
    names = [ln.text for ln in shown]
    subject = r.title.text if r.title else ""
    if q.zh:
        text = f"{_quote(subject, True) if subject else '页面'}显示的状态是 {_join(names, True)}。"
    else:
        text = f"The status shown{' for ' + _quote(subject, False) if subject else ''} is {_join(names, False)}."
    return _answer(q, "status", text, [Fact("status", n) for n in names], _ground(*shown))


def _error(q: _Question, r: Reading) -> Answer | None:
    if not q.has(ERROR_EN, ERROR_ZH) or not r.errors:
        return None
    texts = [ln.text for ln in r.errors]
    if q.zh:
        text = f"截图上的提示是：{'；'.join(_quote(t, True) for t in texts)}。"
    else:
        text = _end(f"The screen says: {' — '.join(_quote(t, False) for t in texts)}")
    return _answer(q, "error", text, [Fact("message", t) for t in texts], _ground(*r.errors))


def _title(q: _Question, r: Reading) -> Answer | None:
    if not q.has(TITLE_EN, TITLE_ZH) or r.title is None:
        return None
    t = r.title.text
    text = f"标题是{_quote(t, True)}。" if q.zh else f"The title is {_quote(t, False)}."
    return _answer(q, "title", text, [Fact("title", t)], _ground(r.title))


def _quote_line(q: _Question, r: Reading) -> Answer | None:
    """Last resort: the sentence on screen that contains the question's own words
    ("How many files will be deleted?" -> "... and its 12 files ...")."""
    best, best_hits = None, 0
    for text, lines in _paragraphs(r.lines):
        words = set(re.findall(r"[a-z0-9]+", text.casefold()))
        norm = normalise(text)
        hits = sum(1 for k in q.keywords if k in words or k.rstrip("s") in words)
        if q.zh:
            pieces = {q.norm[i : i + 2] for i in range(len(q.norm) - 1)}
            hits += sum(1 for p in pieces if has_cjk(p) and p in norm and p not in _ZH_STOP)
        if hits > best_hits and len(text) >= 12:
            best, best_hits = (text, lines), hits
    if best is None:
        return None
    text, lines = best
    sentence = (
        f"截图上写着：{_quote(text, True)}。"
        if q.zh
        else _end(f"The screen says: {_quote(text, False)}")
    )
    answer = _answer(q, "quote", sentence, [Fact("text", text)], _ground(*lines))
    return answer
