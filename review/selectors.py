"""Reads for reviewers: the queue, one item with its conversation, exports.

Reviewers see content that is already redacted (messages are stored redacted), never
the owner's username or email: owners appear as "user #id".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404

from assistant.models import Message, Upload
from audit.models import AuditEvent

from .models import AnswerFeedback, ReviewItem
from .permissions import CAN_REVIEW

# Audit actions that carry a safety decision (written by assistant/safety).
SAFETY_ACTION_PREFIXES = ("safety.", "moderation.")


def review_item_access(*, user, item_id, perm: str = CAN_REVIEW) -> ReviewItem:
    if not user.is_authenticated:
        raise PermissionDenied
    if not user.has_perm(perm):
        raise PermissionDenied
    try:
        item_id = int(item_id)
    except (TypeError, ValueError):
        raise Http404("No such review item.") from None
    item = ReviewItem.objects.select_related("conversation", "message").filter(pk=item_id).first()
    if item is None:
        raise Http404("No such review item.")
    return item


def review_upload_access(*, item: ReviewItem, upload_id) -> Upload:
    """A screenshot of the item's conversation, and no other."""
    upload = (
        Upload.objects.filter(pk=upload_id, message__conversation=item.conversation_id)
        .distinct()
        .first()
    )
    if upload is None:
        raise Http404("No such screenshot in this conversation.")
    return upload


def upload_review_copy(upload: Upload) -> tuple[str, bool]:
    """(path relative to MEDIA_ROOT, is_redacted) of the screenshot reviewers see.

    With the safety pipeline in place (assistant/safety/pipeline.py) the stored `original`
    already has PII boxed out. A separate `redacted` field, should one appear, wins.
    Without either it is the plain original: re-encoded, metadata stripped, but showing
    whatever the screen showed; the page says so."""
    redacted = getattr(upload, "redacted", "") or ""
    if redacted:
        return redacted, True
    if getattr(upload, "original_redacted", None) is not None:
        return upload.original, upload.original_redacted  # as it was when stored
    # Stored before that was recorded: the best guess is the setting as it is now.
    in_place = _UPLOADS_REDACTED_IN_PLACE and getattr(settings, "PII_REDACT_IMAGES", False)
    return upload.original, in_place


# The safety pipeline marks its uploads with these fields; their originals are redacted.
_UPLOADS_REDACTED_IN_PLACE = {"pii_counts", "model_copy_unredacted"} <= {
    f.name for f in Upload._meta.get_fields()
}


def review_queue(*, status: str = "open", source: str = "", label: str = ""):
    items = ReviewItem.objects.select_related("conversation")
    if status in ReviewItem.Status.values:
        items = items.filter(status=status)
    if source in ReviewItem.Source.values:
        items = items.filter(source=source)
    if label in ReviewItem.Label.values:
        items = items.filter(label=label)
    # Oldest open first: a queue is worked from the front.
    return items.order_by("created_at" if status == "open" else "-resolved_at", "id")


def review_next_open(*, after: ReviewItem) -> ReviewItem | None:
    return (
        ReviewItem.objects.filter(status=ReviewItem.Status.OPEN)
        .exclude(pk=after.pk)
        .order_by("created_at", "id")
        .first()
    )


@dataclass
class Turn:
    message: Message
    latency_ms: int | None = None
    wait_ms: int | None = None
    feedback: list[AnswerFeedback] = field(default_factory=list)
    boxes: list[dict] = field(default_factory=list)  # of the answer to this question
    image_redacted: bool = False
    is_target: bool = False


def review_item_turns(*, item: ReviewItem) -> list[Turn]:
    messages = list(
        item.conversation.messages.select_related("upload").order_by("created_at", "id")
    )
    feedback: dict[int, list[AnswerFeedback]] = {}
    for entry in AnswerFeedback.objects.filter(message__conversation=item.conversation_id):
        feedback.setdefault(entry.message_id, []).append(entry)
    answers_by_question = {m.reply_to_id: m for m in messages if m.reply_to_id}
    turns = []
    for message in messages:
        turn = Turn(message=message, is_target=message.pk == item.message_id)
        if message.role == Message.Role.ASSISTANT:
            turn.latency_ms = _ms(message.started_at, message.finished_at)
            turn.wait_ms = _ms(message.created_at, message.started_at)
            turn.feedback = feedback.get(message.pk, [])
        else:
            answer = answers_by_question.get(message.pk)
            turn.boxes = list(answer.boxes) if answer is not None else []
            if message.upload is not None:
                turn.image_redacted = upload_review_copy(message.upload)[1]
        turns.append(turn)
    return turns


def review_item_safety_events(*, item: ReviewItem) -> list[AuditEvent]:
    """Safety decisions about this conversation or its messages, newest last."""
    conversation_id = item.conversation_id
    message_ids = [str(pk) for pk in item.conversation.messages.values_list("pk", flat=True)]
    prefix = Q()
    for start in SAFETY_ACTION_PREFIXES:
        prefix |= Q(action__startswith=start)
    about = (
        Q(object_type="conversation", object_id=str(conversation_id))
        | Q(object_type="message", object_id__in=message_ids)
        | Q(details__conversation=conversation_id)
    )
    return list(AuditEvent.objects.filter(prefix).filter(about).order_by("seq")[:200])


def review_item_siblings(*, item: ReviewItem):
    return ReviewItem.objects.filter(conversation=item.conversation_id).exclude(pk=item.pk)


def review_export_items(*, label: str = "", verdict: str = "", source: str = ""):
    items = ReviewItem.objects.filter(status=ReviewItem.Status.RESOLVED)
    if label in ReviewItem.Label.values:
        items = items.filter(label=label)
    if verdict in ReviewItem.Verdict.values:
        items = items.filter(verdict=verdict)
    if source in ReviewItem.Source.values:
        items = items.filter(source=source)
    return items.order_by("resolved_at", "id")


def review_export_records(items) -> Iterator[dict]:
    """One evaluation record per labelled item. Texts are the stored (redacted) ones;
    screenshots are referenced by id and size, never embedded: the export leaves the
    platform's access control, the images' pixels should not."""
    for item in items.iterator(chunk_size=200):
        messages = item.conversation.messages.select_related("upload").order_by("created_at", "id")
        turns = []
        for message in messages:
            if item.message_id and message.pk > item.message_id:
                break  # what came after the judged answer is not part of the example
            turn = {"id": message.pk, "role": message.role, "text": message.text}
            if message.role == Message.Role.USER:
                upload = message.upload
                turn["image"] = (
                    {"upload_id": str(upload.pk), "width": upload.width, "height": upload.height}
                    if upload is not None
                    else None
                )
            else:
                turn.update(
                    status=message.status,
                    engine=message.engine,
                    model=message.model,
                    boxes=message.boxes,
                    usage={
                        "prompt_tokens": message.prompt_tokens,
                        "completion_tokens": message.completion_tokens,
                    },
                    latency_ms=_ms(message.started_at, message.finished_at),
                )
            turns.append(turn)
        yield {
            "review_item": item.pk,
            "source": item.source,
            "reason": item.reason,
            "verdict": item.verdict,
            "label": item.label,
            "comment": item.comment,
            "resolved_at": item.resolved_at.isoformat() if item.resolved_at else None,
            "conversation": item.conversation_id,
            "target_message": item.message_id,
            "messages": turns,
        }


def _ms(start, end) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000)
