"""Conversations through the chat page: create, history, delete, and who may do what."""

from __future__ import annotations

import pytest

from assistant import services
from assistant.errors import ServiceError
from assistant.models import Conversation, Message, Upload
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_create_conversation_and_open_it(owner_client, owner):
    response = owner_client.post("/conversations/")
    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.owner == owner
    assert owner_client.get(response.json()["url"]).status_code == 200
    assert AuditEvent.objects.filter(action="conversation.create").count() == 1


def test_outsider_cannot_see_or_delete(owner, owner_client, outsider_client):
    conversation = services.conversation_create(owner=owner)
    assert outsider_client.get(f"/c/{conversation.pk}/").status_code == 404
    assert outsider_client.get(f"/conversations/{conversation.pk}/messages/").status_code == 404
    assert outsider_client.post(f"/conversations/{conversation.pk}/delete/").status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_delete_removes_messages_uploads_and_files(
    owner, owner_client, orders_png, media_root, django_capture_on_commit_callbacks
):
    upload = services.upload_create(owner=owner, data=orders_png)
    conversation = services.conversation_create(owner=owner)
    Message.objects.create(conversation=conversation, role="user", text="hi", upload=upload)
    files = [media_root / upload.original, media_root / upload.model_copy]
    assert all(f.exists() for f in files)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/conversations/{conversation.pk}/delete/")
    assert response.status_code == 302
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
    assert not Upload.objects.exists()
    assert not any(f.exists() for f in files)
    event = AuditEvent.objects.get(action="conversation.delete")
    assert event.details == {"messages": 1, "uploads": 1}


def test_history_is_listed_in_order(owner, owner_client):
    conversation = services.conversation_create(owner=owner)
    question = Message.objects.create(conversation=conversation, role="user", text="first?")
    Message.objects.create(
        conversation=conversation, role="assistant", text="answer", reply_to=question
    )
    data = owner_client.get(f"/conversations/{conversation.pk}/messages/").json()
    assert [m["text"] for m in data["messages"]] == ["first?", "answer"]


@pytest.mark.parametrize("text", ["", "   ", "x" * 9000])
def test_ask_refuses_empty_and_overlong_questions(owner, text):
    conversation = services.conversation_create(owner=owner)
    with pytest.raises(ServiceError):
        services.message_ask(conversation=conversation, acting_user=owner, text=text)
    assert not Message.objects.exists()


def test_ask_refuses_someone_elses_upload(owner, outsider, orders_png):
    upload = services.upload_create(owner=outsider, data=orders_png)
    conversation = services.conversation_create(owner=owner)
    with pytest.raises(ServiceError) as exc:
        services.message_ask(conversation=conversation, acting_user=owner, text="hi", upload=upload)
    assert exc.value.status == 404
