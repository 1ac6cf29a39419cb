"""The real thing: RapidOCR + SmolLM2 loaded from the GGUF, through LiteEngine.generate().

Nothing is mocked. The engine and the screenshots are session fixtures (conftest.py).
"""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from inference.engine import Engine
from inference.types import Box, ChatTurn, Done, Error, GenerationRequest, SamplingParams, Token

pytestmark = pytest.mark.slow  # loads the real OCR and SmolLM2


def request(rid, question, image=None, size=None, **sampling):
    turn = ChatTurn("user", question, image_path=str(image) if image else None, image_size=size)
    return GenerationRequest(rid, (turn,), SamplingParams(**sampling))


def run(engine, req, on_token=None):
    events = []
    for event in engine.generate(req):
        events.append(event)
        if isinstance(event, Token) and on_token:
            on_token(event)
    return events


def split(events):
    tokens = [e for e in events if isinstance(e, Token)]
    boxes = [e for e in events if isinstance(e, Box)]
    ends = [e for e in events if isinstance(e, Done | Error)]
    assert len(ends) == 1 and events[-1] is ends[0], events
    return tokens, boxes, ends[0]


def test_engine_protocol_and_health(engine):
    assert isinstance(engine, Engine)
    health = engine.health()
    assert health["ok"] and health["engine"] == "lite"
    assert health["phraser"] == "SmolLM2-135M-Instruct"


def test_english_pending_order(engine, screens):
    size = Image.open(screens["orders_en"]).size
    assert size == (1280, 800)
    events = run(
        engine, request("t-en", "Which order is still pending?", screens["orders_en"], size)
    )
    tokens, boxes, done = split(events)
    assert isinstance(done, Done) and done.finish_reason == "stop" and done.engine == "lite"
    assert "A-1043" in done.text and "$342.75" in done.text
    assert "".join(t.text for t in tokens) == done.text
    assert len(tokens) >= 4
    assert done.usage.completion_tokens > 0 and done.usage.prompt_tokens > 0
    assert any("A-1043" in b.label for b in boxes)
    # SmolLM2 wrote this answer (its wording passed the fact guard), not the template.
    stats = engine.last_stats
    assert stats.source == "model" and stats.model_tokens > 0 and not stats.guard
    assert stats.model_text.strip() == done.text.strip()


def test_guard_falls_back_to_the_reading_when_the_model_drops_a_fact(engine, screens):
    size = Image.open(screens["login_en"]).size
    question = "What does the sign in button do?"
    events = run(engine, request("t-guard", question, screens["login_en"], size))
    tokens, boxes, done = split(events)
    stats = engine.last_stats
    # The model did write (tokens were generated), but its wording lost a fact of the
    # reading, so the reading's own sentence was sent instead.
    assert stats.model_tokens > 0 and stats.source == "template" and stats.guard
    assert "Sign in" in done.text and "Email" in done.text and "Password" in done.text


def test_chinese_toggle(engine, screens):
    size = Image.open(screens["settings_zh"]).size
    events = run(engine, request("t-zh", "深色模式开启了吗？", screens["settings_zh"], size))
    tokens, boxes, done = split(events)
    assert done.text == "「深色模式」已开启。"
    assert len(tokens) >= 3 and boxes


def test_boxes_are_mapped_to_the_original_size(engine, screens, tmp_path):
    # The web side may hand over a downscaled copy: boxes must come back in original pixels.
    small = tmp_path / "small.png"
    Image.open(screens["login_en"]).resize((768, 576), Image.LANCZOS).save(small)
    events = run(engine, request("t-box", "Which email is entered?", small, (1024, 768)))
    tokens, boxes, done = split(events)
    assert "jane@acme.io" in done.text
    email = next(b for b in boxes if "jane" in b.label)
    # In the original 1024x768 render the value is drawn at about x=364..478, y=268..288.
    assert abs(email.x1 - 364) < 20 and abs(email.x2 - 478) < 20
    assert abs(email.y1 - 268) < 15 and abs(email.y2 - 288) < 15


def test_abort_stops_within_a_few_tokens(engine, screens):
    size = Image.open(screens["orders_en"]).size
    req = request("t-abort", "Which orders have been shipped?", screens["orders_en"], size)
    full = split(run(engine, request("t-full", req.turns[0].text, screens["orders_en"], size)))[0]
    events = run(engine, req, on_token=lambda _: engine.abort("t-abort"))
    tokens, _, done = split(events)
    assert isinstance(done, Done) and done.finish_reason == "abort"
    assert len(tokens) <= 2 < len(full)


def test_abort_before_start_and_unknown_ids(engine, screens):
    engine.abort("never-seen")  # must not raise
    engine.abort("t-early")
    size = Image.open(screens["orders_en"]).size
    tokens, _, done = split(
        run(engine, request("t-early", "What is this?", screens["orders_en"], size))
    )
    assert tokens == [] and done.finish_reason == "abort"


def test_text_only_conversation_asks_for_a_screenshot(engine):
    tokens, boxes, done = split(run(engine, request("t-text", "What is the total?")))
    assert "screenshot" in done.text and tokens and not boxes
    tokens, _, done = split(run(engine, request("t-text-zh", "合计是多少？")))
    assert "截图" in done.text


def test_max_new_tokens_and_unreadable_image(engine, screens, tmp_path):
    size = Image.open(screens["orders_en"]).size
    req = request("t-len", "What is this screen?", screens["orders_en"], size, max_new_tokens=3)
    tokens, _, done = split(run(engine, req))
    assert len(tokens) == 3 and done.finish_reason == "length"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    _, _, error = split(run(engine, request("t-bad", "What is this?", bad, (10, 10))))
    assert isinstance(error, Error) and error.code == "bad_image"


def test_concurrent_generations(engine, screens):
    size = Image.open(screens["settings_zh"]).size
    results = {}

    def worker(i):
        q = "深色模式开启了吗？" if i % 2 else "Is dark mode on?"
        shot = screens["settings_zh"] if i % 2 else screens["orders_en"]
        results[i] = split(run(engine, request(f"t-c{i}", q, shot, size)))[2]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 3
    assert results[1].text == "「深色模式」已开启。"
    assert results[0].finish_reason == "stop"
