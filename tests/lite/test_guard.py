"""The phrasing guard: what SmolLM2 may and may not write (no model needed)."""

from __future__ import annotations

from inference.lite.answer import Answer, Fact
from inference.lite.phrasing import guard, template_pieces


def answer(template, facts):
    return Answer(
        "answer", "en", template, intent="field", facts=[Fact(k, v) for k, v in facts],
        required=[v for _, v in facts],
    )  # fmt: skip


PENDING = answer("A-1043 (total $342.75) is Pending.", [("Order", "A-1043"), ("Total", "$342.75")])
SWITCH = answer("The “Autoplay videos” switch is on.", [("Autoplay videos", "on")])
PAID = answer("The status shown is Unpaid.", [("status", "Unpaid")])


def test_faithful_rewording_passes():
    assert guard("Order A-1043 is still pending, with a total of $342.75.", PENDING, "") == ""


def test_invented_number_is_rejected():
    verdict = guard("Order A-1043 is pending; its total is $324.75.", PENDING, "")
    assert verdict.startswith(("invented", "lost fact"))


def test_lost_fact_is_rejected():
    assert guard("Order A-1043 is still pending.", PENDING, "").startswith("lost fact")


def test_flipped_state_is_rejected():
    assert guard("The autoplay videos switch is off.", SWITCH, "Is autoplay on?") != ""


def test_status_word_from_the_question_is_not_allowed():
    text = "The invoice was paid, but the status is Unpaid."
    assert guard(text, PAID, "Is this invoice paid?").startswith("changed meaning")


def test_invented_name_and_echo_are_rejected():
    assert guard("A-1043 for Photoshop costs $342.75.", PENDING, "") != ""
    assert guard("Draft: A-1043 (total $342.75) is Pending.", PENDING, "") != ""
    assert guard("", PENDING, "") == "empty"


def test_template_pieces_rebuild_the_text():
    for text in ("The total is $1.00.", "「深色模式」已开启。"):
        assert "".join(template_pieces(text)) == text
        assert len(template_pieces(text)) > 1
