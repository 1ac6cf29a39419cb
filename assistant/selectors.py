"""Reads, and the access functions every view and consumer loads objects through.

An object that exists but belongs to someone else is reported exactly like one that does
not exist, so ids cannot be probed.
"""

from __future__ import annotations

import uuid

from django.http import Http404

from .models import Conversation, Message, Upload


def conversation_access(*, user, conversation_id) -> Conversation:
    try:
        conversation_id = int(conversation_id)
    except (TypeError, ValueError):
        raise Http404("No such conversation.") from None
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("No such conversation.")
    if not user.is_authenticated:
        raise Http404("No such conversation.")
    if conversation.owner_id != user.pk:
        raise Http404("No such conversation.")
    return conversation


def upload_access(*, user, upload_id) -> Upload:
    upload_uuid = _uuid_or_none(upload_id)
    upload = Upload.objects.filter(pk=upload_uuid).first() if upload_uuid else None
    if upload is None:
        raise Http404("No such upload.")
    if not user.is_authenticated:
        raise Http404("No such upload.")
    if upload.owner_id != user.pk:
        raise Http404("No such upload.")
    return upload


def message_access(*, user, message_id) -> Message:
    try:
        message_id = int(message_id)
    except (TypeError, ValueError):
        raise Http404("No such message.") from None
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        raise Http404("No such message.")
    conversation_access(user=user, conversation_id=message.conversation_id)
    return message


def conversation_list(*, user):
    return Conversation.objects.filter(owner=user).order_by("-updated_at")


def conversation_messages(*, conversation):
    return conversation.messages.select_related("upload").order_by("created_at", "id")


def message_to_dict(message: Message) -> dict:
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "error": message.error,
        "engine": message.engine,
        "boxes": message.boxes,
        "upload_id": str(message.upload_id) if message.upload_id else None,
        "reply_to": message.reply_to_id,
        "usage": {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
        },
        "created_at": message.created_at.isoformat(),
    }


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None
