"""Output moderation by a non-streaming checker (an external classifier) while the answer
streams: the answer goes out in checked segments, so a block stops the stream before the
blocked text leaves the server.

The classifier is "the outside internet": a real HTTP server on loopback stands in for
it. Everything else is real (the chat websocket, the ASGI app, the embedded engine host,
the runner, PostgreSQL); the model is the scripted engine of test_flow.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant.models import Message
from assistant.safety.moderation import HttpClassifierChecker, TermListChecker, Verdict
from assistant.safety.pipeline import AnswerGuard
from tests.safety import test_flow
from tests.safety.test_flow import ask, audit_actions, chunks, new_conversation, run_sync

MARKER = "zebracorn"  # what the pretend classifier blocks on

engine = test_flow.engine  # the scripted engine fixture

CHECKERS = [
    "assistant.safety.moderation.TermListChecker",
    "assistant.safety.moderation.HttpClassifierChecker",
]


class _Classifier(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((body["stage"], body["input"]))
        verdict = (
            {"action": "block", "categories": ["hate"]}
            if MARKER in body["input"]
            else {"action": "allow"}
        )
        answer = json.dumps(verdict).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def classifier(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Classifier)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    settings.MODERATION_CHECKERS = CHECKERS
    settings.MODERATION_HTTP_URL = f"http://127.0.0.1:{server.server_port}/moderate"
    settings.MODERATION_HTTP_FAIL_OPEN = False
    settings.STREAM_FLUSH_INTERVAL = 0  # every released piece is sent at once
    yield server
    server.shutdown()
    server.server_close()


def outputs(classifier) -> list[str]:
    return [text for stage, text in classifier.seen if stage == "output"]


# --- through the chat websocket ------------------------------------------------------------

flow = pytest.mark.django_db(transaction=True)


@flow
async def test_classifier_block_stops_the_stream_before_the_blocked_text(owner, engine, classifier):
    first = "The first sentence is fine."
    answer = f"{first} The second one says {MARKER} openly. The third never comes."
    engine.scripts["poem"] = chunks(answer, 3)
    conversation = await new_conversation(owner)
    accepted, events = await ask(owner, conversation, "Write a poem about this screen")
    message_id = accepted["message_id"]

    done = events[-1]
    assert done["type"] == "done"
    assert done["finish_reason"] == "content_filter" and done["code"] == "content_blocked"
    assert "hate" in done["text"] and MARKER not in done["text"]
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    # The checked first sentence went out; nothing of the second ever did.
    assert streamed == first
    assert MARKER not in json.dumps(events)
    assert str(message_id) in engine.aborted
    # The classifier read the answer so far at each segment end, and never the third
    # sentence: the stream stopped at the block.
    assert outputs(classifier)[0] == first
    assert MARKER in outputs(classifier)[-1]
    assert not any("third" in text for text in outputs(classifier))

    stored = await run_sync(Message.objects.get, pk=message_id)
    assert stored.text == done["text"] and stored.status == "done"
    assert stored.moderation == {
        "action": "block",
        "categories": ["hate"],
        "checkers": ["http"],
        "stage": "output",
    }
    blocks = await run_sync(audit_actions, action="moderation.block", object_id=str(message_id))
    assert len(blocks) == 1
    assert blocks[0][1]["stage"] == "output" and blocks[0][1]["checkers"] == ["http"]
    assert MARKER not in json.dumps(blocks)


@flow
async def test_allowed_answer_streams_whole_in_checked_segments(owner, engine, classifier):
    answer = "Order 10232 is pending. It was placed on 3.5 May! Nothing else is open.\nDone"
    engine.scripts["orders"] = chunks(answer, 2)
    conversation = await new_conversation(owner)
    accepted, events = await ask(owner, conversation, "Which orders are open?")
    done = events[-1]
    assert done["type"] == "done" and done["finish_reason"] == "stop"
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert "".join(tokens) == done["text"] == answer
    # Released a sentence at a time (not "3." of "3.5"), each after the classifier read
    # the answer up to its end; the last check was the whole answer.
    assert tokens[:3] == [
        "Order 10232 is pending.",
        " It was placed on 3.5 May!",
        " Nothing else is open.\n",
    ]
    checked = outputs(classifier)
    assert checked == [
        "Order 10232 is pending.",
        "Order 10232 is pending. It was placed on 3.5 May!",
        "Order 10232 is pending. It was placed on 3.5 May! Nothing else is open.\n",
        answer,
    ]
    stored = await run_sync(Message.objects.get, pk=accepted["message_id"])
    assert stored.text == answer and stored.moderation == {}


# --- the guard itself ----------------------------------------------------------------------


class _Blocks:
    """A non-streaming checker that blocks when every needle is in the text it reads,
    and records what it read."""

    name = "fake"
    streaming = False

    def __init__(self, *needles: str) -> None:
        self.needles = needles or (MARKER,)
        self.seen: list[str] = []

    def check(self, text: str, *, stage: str) -> Verdict:
        self.seen.append(text)
        if all(needle in text for needle in self.needles):
            return Verdict(action="block", categories=("hate",), checkers=(self.name,))
        return Verdict()


TERMS = TermListChecker(terms=[])


def test_without_a_non_streaming_checker_pieces_go_out_at_once():
    # Only PII redaction's hold-back (an unfinished word) delays anything: as before.
    guard = AnswerGuard(checkers=(TERMS,))
    pieces = [guard.feed(p) for p in ["No sentence", " end here", " yet"]]
    assert pieces == ["No ", "sentence end ", "here "]
    assert guard.finish() == "yet"


def test_segments_end_at_sentences_or_after_segment_chars():
    checker = _Blocks()
    guard = AnswerGuard(checkers=(TERMS, checker), segment_chars=40)
    pieces = ["Total: 3.5 kg", " today. Next", " one", " is a long line without an end mark"]
    pieces += [" at all", " so it goes", "。好"]
    out = [guard.feed(p) for p in pieces]
    # Not at "3." of "3.5"; at "today." once a space follows; after 40 characters held
    # without an end; at the CJK full stop. (PII redaction holds back an unfinished word.)
    assert out == [
        "",
        "Total: 3.5 kg today.",
        "",
        " Next one is a long line without an end ",
        "",
        "",
        "mark at all so it goes。",
    ]
    assert guard.finish() == "好"
    # Each time the answer so far, up to the end of the segment about to go out.
    assert checker.seen == ["".join(out[:2]), "".join(out[:4]), "".join(out), "".join(out) + "好"]


def test_the_classifier_reads_the_whole_answer_so_far_not_just_the_segment():
    checker = _Blocks("zebra", "unicorn")
    guard = AnswerGuard(checkers=(TERMS, checker), segment_chars=1000)
    assert guard.feed("A zebra. ") == "A zebra."
    assert guard.feed("A unicorn. More. ") == ""
    assert guard.blocked and guard.feed("More.\n") == "" and guard.finish() == ""
    assert guard.verdict.checkers == ("fake",)
    assert checker.seen[-1] == "A zebra. A unicorn. More."


def test_an_unreachable_classifier_fails_closed_before_anything_is_released():
    unreachable = HttpClassifierChecker(url="http://127.0.0.1:9/", timeout=0.5, fail_open=False)
    guard = AnswerGuard(checkers=(TERMS, unreachable))
    assert guard.feed("Hello there. ") == ""
    assert guard.blocked and guard.verdict.categories == ("moderation_unavailable",)
    assert guard.finish() == ""
