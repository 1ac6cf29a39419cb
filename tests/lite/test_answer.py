"""Question -> facts on readings built from hand-made OCR lines (no models)."""

from __future__ import annotations

from test_reading import line, orders_lines

from inference.lite.answer import answer_question, needs_screenshot
from inference.lite.reading import Reading, Toggle, read_screen


def ask(question, reading):
    return answer_question(question, reading)


def test_pending_order_gives_id_and_total():
    answer = ask("Which order is still pending?", read_screen(orders_lines()))
    assert answer.outcome == "answer"
    assert "A-1042" in answer.template and "$89.50" in answer.template
    assert {f.value for f in answer.facts} == {"A-1042", "$89.50"}
    assert "Esther" not in answer.template
    assert len(answer.grounding) >= 2


def test_cell_lookup_and_count():
    reading = read_screen(orders_lines())
    assert "$42.10" in ask("What is the total of order A-1043?", reading).template
    assert "Delivered" in ask("what's the status of a-1041", reading).template
    assert "3" in ask("How many orders are there?", reading).template


def test_unrelated_question_cannot_be_answered():
    answer = ask("What is the weather in Paris?", read_screen(orders_lines()))
    assert answer.outcome == "cannot_answer"
    assert "can't answer" in answer.template
    assert answer.facts == []


def _settings():
    lines = [line("Settings", 40, 10, h=34), line("Darkmode", 40, 80), line("Wi-Fi", 40, 140)]
    reading = Reading(width=600, height=300, lines=lines, title=lines[0], kind="settings")
    reading.toggles = [
        Toggle(lines[1], True, (500, 78, 548, 104)),
        Toggle(lines[2], False, (500, 138, 548, 164)),
    ]
    return reading


def test_toggle_state_uses_the_question_spelling():
    answer = ask("Is dark mode on?", _settings())
    assert answer.template == "The “Dark mode” switch is on."
    assert ((500, 78, 548, 104), "on") in answer.grounding
    assert "off" in ask("is wi-fi enabled?", _settings()).template


def test_missing_toggle_is_cannot_answer():
    assert ask("Is Bluetooth on?", _settings()).outcome == "cannot_answer"
    assert ask("蓝牙开启了吗？", _settings()).template.startswith("无法")


def test_list_of_enabled_settings():
    answer = ask("Which settings are turned on?", _settings())
    assert "Darkmode" in answer.template and "Wi-Fi" not in answer.template


def test_chinese_questions_get_chinese_answers():
    lines = [line("设置", 40, 10, h=34), line("深色模式", 40, 80)]
    reading = Reading(width=600, height=300, lines=lines, title=lines[0], kind="settings")
    reading.toggles = [Toggle(lines[1], True, (500, 78, 548, 104))]
    assert ask("深色模式开启了吗？", reading).template == "「深色模式」已开启。"


def test_button_purpose_comes_from_the_form():
    reading = read_screen(
        [
            line("Sign in to Glimpse", 40, 10, h=34),
            line("Email:", 40, 80),
            line("jane@acme.io", 200, 80),
            line("Password:", 40, 130),
            line("Sign in", 40, 200),
        ]
    )
    answer = ask("What does the Sign in button do?", reading)
    assert answer.intent == "button"
    assert "Email" in answer.template and "Password" in answer.template


def test_text_only_conversation_needs_a_screenshot():
    assert "screenshot" in needs_screenshot("hello?").template
    assert "截图" in needs_screenshot("你好").template
