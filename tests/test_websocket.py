"""The chat websocket against the real ASGI app, the embedded engine and the lite model."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from assistant import services
from assistant.models import Message
from audit.models import AuditEvent

from .wsclient import collect_until_final, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@database_sync_to_async
def make_conversation(user, png=None):
    conversation = services.conversation_create(owner=user)
    upload = services.upload_create(owner=user, data=png) if png else None
    return conversation, upload


@database_sync_to_async
def stored(message_id):
    return Message.objects.get(pk=message_id)


async def test_anonymous_socket_is_refused(owner):
    conversation, _ = await make_conversation(owner)
    communicator, connected, code = await open_socket(conversation.pk)
    assert not connected and code == 4401


async def test_someone_elses_conversation_is_refused(owner, outsider):
    conversation, _ = await make_conversation(owner)
    communicator, connected, code = await open_socket(conversation.pk, user=outsider)
    assert not connected and code == 4404


async def test_foreign_origin_is_refused(owner):
    conversation, _ = await make_conversation(owner)
    communicator, connected, _ = await open_socket(
        conversation.pk, user=owner, origin="https://evil.example"
    )
    assert not connected


async def test_bad_frames_get_error_events(owner):
    conversation, _ = await make_conversation(owner)
    communicator, connected, _ = await open_socket(conversation.pk, user=owner)
    assert connected
    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from())["code"] == "invalid_json"
    await communicator.send_json_to({"type": "dance"})
    assert (await communicator.receive_json_from())["code"] == "unknown_type"
    await communicator.send_json_to({"type": "ask", "text": "   "})
    assert (await communicator.receive_json_from())["code"] == "empty_prompt"
    await communicator.send_json_to({"type": "ask", "text": "hi", "upload_id": "not-a-uuid"})
    assert (await communicator.receive_json_from())["code"] == "not_found"
    await communicator.send_to(text_data="[" * 70000)
    assert (await communicator.receive_json_from())["code"] == "invalid_frame"
    await communicator.disconnect()


async def test_question_streams_numbered_events_and_persists_answer(owner, orders_png):
    conversation, upload = await make_conversation(owner, orders_png)
    communicator, connected, _ = await open_socket(conversation.pk, user=owner)
    assert connected
    await communicator.send_json_to(
        {"type": "ask", "text": "Which order is still pending?", "upload_id": str(upload.pk)}
    )
    accepted = await communicator.receive_json_from(timeout=10)
    assert accepted["type"] == "accepted"
    message_id = accepted["message_id"]
    events = await collect_until_final(communicator, timeout=120)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done", kinds
    assert kinds.count("token") >= 2, "the answer must stream in several chunks"
    # Numbered without gaps, all for this answer.
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert {e["message_id"] for e in events} == {message_id}
    done = events[-1]
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    assert done["text"] == streamed
    assert "10232" in done["text"], done["text"]

    answer = await stored(message_id)
    assert answer.status == "done"
    assert answer.text == done["text"]
    assert answer.engine == "lite"
    # The model that wrote it, for reviewers and exports (the lite engine's parts).
    assert answer.model == "PP-OCRv4 + SmolLM2-135M-Instruct"
    assert await database_sync_to_async(
        AuditEvent.objects.filter(action="message.answer", object_id=str(message_id)).exists
    )()
    await communicator.disconnect()


async def test_second_question_while_answering_is_refused_then_stop_aborts(owner, orders_png):
    conversation, upload = await make_conversation(owner, orders_png)
    communicator, _, _ = await open_socket(conversation.pk, user=owner)
    await communicator.send_json_to(
        {"type": "ask", "text": "Describe everything on this screen.", "upload_id": str(upload.pk)}
    )
    accepted = await communicator.receive_json_from(timeout=10)
    message_id = accepted["message_id"]
    await communicator.send_json_to({"type": "ask", "text": "and another thing"})
    busy = await communicator.receive_json_from(timeout=10)
    while busy.get("message_id") == message_id:  # stream events may come first
        busy = await communicator.receive_json_from(timeout=10)
    assert busy["type"] == "error" and busy["code"] == "conversation_busy"
    # Refused whole: the second question was not stored either.
    assert await database_sync_to_async(conversation.messages.count)() == 2

    await communicator.send_json_to({"type": "stop", "message_id": message_id})
    events = await collect_until_final(communicator, timeout=120)
    assert events[-1]["type"] == "done"
    assert events[-1]["finish_reason"] == "abort"
    answer = await stored(message_id)
    assert answer.status == "aborted"
    await communicator.disconnect()


async def test_text_only_question_gets_a_plain_answer(owner):
    conversation, _ = await make_conversation(owner)
    communicator, _, _ = await open_socket(conversation.pk, user=owner)
    await communicator.send_json_to({"type": "ask", "text": "What is on my screen?"})
    accepted = await communicator.receive_json_from(timeout=10)
    events = await collect_until_final(communicator, timeout=120)
    assert events[-1]["type"] == "done"
    assert "screenshot" in events[-1]["text"].lower()
    assert (await stored(accepted["message_id"])).status == "done"
    await communicator.disconnect()


async def test_the_first_question_names_the_conversation(owner, orders_png):
    conversation, upload = await make_conversation(owner, orders_png)
    communicator, _, _ = await open_socket(conversation.pk, user=owner)
    questions = [
        {"type": "ask", "text": "Which order is still pending?", "upload_id": str(upload.pk)},
        {"type": "ask", "text": "What is its total?"},
    ]
    for question in questions:
        await communicator.send_json_to(question)
        events = await collect_until_final(communicator, timeout=120)
        assert events[-1]["type"] == "done"
    await conversation.arefresh_from_db()
    assert conversation.title == "Which order is still pending?"
    await communicator.disconnect()
