"""Per-request text pipeline: incremental detokenisation, stop strings, boxes."""

from __future__ import annotations

import pytest

from inference.types import Box, Token
from inference.vlm.stream import OutputStream, StopStrings


@pytest.fixture(scope="module")
def tokenizer(glm):
    return glm.loaded.tokenizer


def stream_text(tokenizer, text, **kw):
    out = OutputStream(tokenizer, **kw)
    events = []
    stopped = False
    for token_id in tokenizer(text, add_special_tokens=False)["input_ids"]:
        new, stopped = out.push(token_id)
        events += new
        if stopped:
            break
    events += out.finish(stopped_by_string=stopped)
    return out, events, stopped


def test_cjk_is_never_split_mid_character(tokenizer):
    text = "点击右上角的设置按钮。订单已发货。OK"
    out, events, _ = stream_text(tokenizer, text)
    assert out.text == text
    assert all("\ufffd" not in e.text for e in events if isinstance(e, Token))
    assert len([e for e in events if isinstance(e, Token)]) > 3


def test_box_markup_becomes_box_events(tokenizer):
    text = "Submit is <|begin_of_box|>[500,500,1000,1000]<|end_of_box|> at the bottom."
    out, events, _ = stream_text(tokenizer, text, image_size=(1920, 1080))
    assert out.text == "Submit is  at the bottom."
    assert [e for e in events if isinstance(e, Box)] == [Box(960, 540, 1920, 1080)]
    assert "begin_of_box" not in "".join(e.text for e in events if isinstance(e, Token))


def test_stop_string_split_over_tokens(tokenizer):
    out, events, stopped = stream_text(
        tokenizer, "Order ID 12345 shipped on Monday", stop=("shipped",)
    )
    assert stopped
    assert out.text == "Order ID 12345 "


def test_stop_strings_hold_back_only_possible_prefixes():
    stops = StopStrings(("STOP",))
    assert stops.feed("abc ST") == ("abc ", False)
    assert stops.feed("ART") == ("START", False)
    assert stops.feed(" xS") == (" x", False)
    assert stops.feed("TOP!") == ("", True)
