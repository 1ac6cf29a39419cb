"""Writes: uploads, conversations, questions and the lifecycle of an answer.

Every state change and its audit record share one transaction; work that must only
happen once the change is durable (handing a question to the engine, deleting files)
runs on commit.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Subquery, Value, When
from django.utils import timezone

from audit.services import audit_batch, audit_record
from inference import cache as answer_cache
from inference import client as inference_client
from inference.types import ChatTurn, GenerationRequest, SamplingParams

from . import storage
from .errors import ServiceError
from .models import UNFINISHED_ANSWER_CONSTRAINT, Conversation, Message, Upload
from .safety.pipeline import (
    ScreenedQuestion,
    question_screened_record,
    screen_question,
    screen_upload,
)

logger = logging.getLogger(__name__)

# How many earlier turns the model sees. Screenshots are heavy (about 1,000 visual
# tokens each), so only the newest one travels with the request.
HISTORY_TURNS = 10


# --- uploads -----------------------------------------------------------------------------


def upload_create(*, owner, data: bytes) -> Upload:
    # Sanitised, OCR'd and PII boxed out before anything touches the disk (safety/pipeline).
    clean = screen_upload(data)
    original = storage.save_new(clean.original, clean.extension)
    model_copy = storage.save_new(clean.model_copy, "png")  # prepare_for_model gives PNG
    try:
        with transaction.atomic():
            upload = Upload.objects.create(
                owner=owner,
                original=original,
                model_copy=model_copy,
                content_type=clean.content_type,
                width=clean.width,
                height=clean.height,
                byte_size=len(clean.original),
                sha256=hashlib.sha256(clean.original).hexdigest(),
                model_copy_unredacted=clean.model_copy_unredacted,
                ocr_text=clean.ocr_text,
                pii_counts=clean.pii_counts,
                original_redacted=settings.PII_REDACT_IMAGES,
            )
            audit_record(
                actor=owner,
                action="upload.create",
                obj=upload,
                details={
                    "width": clean.width,
                    "height": clean.height,
                    "bytes": len(clean.original),
                    "redactions": clean.pii_counts,
                },
            )
    except Exception:
        # No row means nobody can reach the files: remove them rather than leak them.
        storage.delete(original, model_copy)
        raise
    return upload


def _upload_delete_files_on_commit(uploads) -> None:
    paths = [p for u in uploads for p in (u.original, u.model_copy)]
    transaction.on_commit(lambda: storage.delete(*paths))


# --- conversations -------------------------------------------------------------------------


# No savepoint when nested: a caller's transaction (the API's) fails as a whole anyway.
@transaction.atomic(savepoint=False)
def conversation_create(*, owner, title: str = "") -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title.strip()[:200])
    audit_record(actor=owner, action="conversation.create", obj=conversation)
    return conversation


@transaction.atomic
def conversation_delete(*, conversation: Conversation, acting_user) -> None:
    for message in conversation.messages.filter(
        role=Message.Role.ASSISTANT, status__in=Message.UNFINISHED_STATUSES
    ):
        transaction.on_commit(lambda pk=message.pk: inference_client.abort(pk))
    # Screenshots belong to the conversation that used them; one still used by another
    # of the owner's conversations stays.
    upload_ids = set(conversation.messages.exclude(upload=None).values_list("upload_id", flat=True))
    used_elsewhere = set(
        Message.objects.filter(upload_id__in=upload_ids)
        .exclude(conversation=conversation)
        .values_list("upload_id", flat=True)
    )
    uploads = list(Upload.objects.filter(pk__in=upload_ids - used_elsewhere))
    conversation_id = conversation.pk
    message_count = conversation.messages.count()
    _upload_delete_files_on_commit(uploads)
    conversation.delete()
    Upload.objects.filter(pk__in=[u.pk for u in uploads]).delete()
    # Recorded last: audit_record takes the chain lock, and an answer finishing at the same
    # moment locks its message row before it does. Taking the row locks first here keeps
    # one lock order everywhere, so the two cannot deadlock.
    audit_record(
        actor=acting_user,
        action="conversation.delete",
        obj=("conversation", conversation_id),
        details={"messages": message_count, "uploads": len(uploads)},
    )


# --- questions and answers ----------------------------------------------------------------


@dataclass(frozen=True)
class AskStarted:
    answer: Message
    # Where the engine hand-off goes (inference.client routes); None when the answer is
    # final already (served from the answer cache).
    route: str | None

    def hand_off(self) -> None:
        if self.route is not None:
            inference_client.submit(self.answer.pk, route=self.route)


def message_ask(
    *,
    conversation: Conversation,
    acting_user,
    text: str,
    upload: Upload | None = None,
    sampling: SamplingParams | None = None,
    screened: ScreenedQuestion | None = None,
) -> Message:
    """Record a question and queue its answer. Returns the assistant message, which the
    engine fills in; its events arrive on the conversation's channel-layer group.

    `screened`: the question already through `screen_question`, for callers that run
    this inside a transaction of their own (a block must be audited outside it, or the
    caller's rollback would take the audit record with it)."""
    started = message_ask_start(
        conversation=conversation,
        acting_user=acting_user,
        text=text,
        upload=upload,
        sampling=sampling,
        screened=screened,
    )
    # Inside a caller's transaction this waits for its commit; outside, it runs now.
    transaction.on_commit(started.hand_off)
    return started.answer


def message_ask_start(
    *,
    conversation: Conversation,
    acting_user,
    text: str,
    upload: Upload | None = None,
    sampling: SamplingParams | None = None,
    screened: ScreenedQuestion | None = None,
    new_conversation: bool = False,
) -> AskStarted:
    """message_ask without the engine hand-off, which the caller makes once the
    transaction has committed and it listens for the events (AskStarted.hand_off).
    `new_conversation`: the conversation was created in the caller's transaction, so
    nobody else can be asking in it and it has no messages yet."""
    text = (text or "").strip()
    if not text:
        raise ServiceError("Type a question first.", code="empty_prompt")
    if len(text) > settings.MAX_PROMPT_CHARS:
        raise ServiceError(
            f"The question is too long (at most {settings.MAX_PROMPT_CHARS} characters).",
            code="prompt_too_long",
        )
    if upload is not None and upload.owner_id != acting_user.pk:
        raise ServiceError("No such upload.", code="not_found", status=404)
    # PII redaction, then moderation (prompt and screenshot text): nothing below sees the
    # raw text. A block raises here, audited, before anything is stored.
    if screened is None:
        screened = screen_question(
            conversation=conversation, acting_user=acting_user, text=text, upload=upload
        )
    sampling = (
        sampling or SamplingParams(max_new_tokens=settings.DEFAULT_MAX_NEW_TOKENS)
    ).clamped()
    # Before anything is written: the answer cache (a hit needs no engine), then
    # admission (a saturated engine refuses at once with Retry-After; docs/deploy.md).
    cache_key = cached = None
    first_question = new_conversation or not conversation.messages.exists()
    if answer_cache.enabled() and first_question:
        cache_key = answer_cache.key_for(
            user_id=acting_user.pk, question=screened.text, upload=upload, sampling=asdict(sampling)
        )
        cached = answer_cache.lookup(cache_key) if cache_key else None
    if cached is None:
        try:
            route = inference_client.admission_check()
        except inference_client.EngineOverloaded as exc:
            error = ServiceError(str(exc), code=exc.code, status=503)
            error.retry_after = exc.retry_after  # seconds, for a Retry-After header
            raise error from None

    with transaction.atomic(savepoint=False), audit_batch():
        question = Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            text=screened.text,
            upload=upload,
            moderation=screened.moderation_record,
        )
        try:
            # A second unfinished answer in the conversation (two tabs asking at once)
            # violates a partial unique index; the transaction, question included, is
            # rolled back by the error raised here.
            answer = Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                reply_to=question,
                status=Message.Status.PENDING if cached is None else Message.Status.DONE,
                sampling=asdict(sampling),
                **(_cached_fields(cached) if cached else {}),
            )
        except IntegrityError as exc:
            if not _answer_unfinished_conflict(exc):
                raise
            raise ServiceError(
                "An answer is still being written. Wait for it or press Stop.",
                code="conversation_busy",
                status=409,
            ) from None
        if not (new_conversation and conversation.title):
            # The first question names the conversation. Decided in the UPDATE itself:
            # the caller's copy of the row may predate an earlier question.
            Conversation.objects.filter(pk=conversation.pk).update(
                updated_at=timezone.now(),
                title=Case(When(title="", then=Value(screened.text[:80])), default=F("title")),
            )
        audit_record(
            actor=acting_user,
            action="message.ask",
            obj=question,
            details={
                "conversation": conversation.pk,
                "answer": answer.pk,
                "upload": str(upload.pk) if upload else None,
                "redactions": screened.redactions,
            },
        )
        question_screened_record(
            screened=screened,
            conversation=conversation,
            question=question,
            answer=answer,
            acting_user=acting_user,
        )
        if cached is not None:
            audit_record(
                actor=None,
                action="message.answer",
                obj=answer,
                details={"status": answer.status, "engine": answer.engine, "cached": True},
            )
            if new_conversation:
                # Created in this transaction: no socket can be in its group yet.
                return AskStarted(answer, route=None)
            transaction.on_commit(
                lambda: answer_cache.publish_cached_answer(
                    group=conversation.group_name,
                    message_id=answer.pk,
                    text=answer.text,
                    engine=answer.engine,
                    usage={
                        "prompt_tokens": cached.prompt_tokens,
                        "completion_tokens": cached.completion_tokens,
                    },
                )
            )
            return AskStarted(answer, route=None)
        if cache_key is not None and route == inference_client.ROUTE_ENGINE:
            transaction.on_commit(
                lambda: answer_cache.expect(answer.pk, cache_key, owner_id=acting_user.pk)
            )
    return AskStarted(answer, route=route)


def _cached_fields(cached) -> dict:
    now = timezone.now()
    return {
        "text": cached.text,
        "engine": f"{cached.engine} (cached)"[:100],
        "model": cached.model[:200],
        "boxes": cached.boxes,
        "prompt_tokens": cached.prompt_tokens,
        "completion_tokens": cached.completion_tokens,
        "started_at": now,
        "finished_at": now,
    }


def message_stop(*, message: Message, acting_user) -> None:
    if message.role != Message.Role.ASSISTANT or message.is_final:
        return
    with transaction.atomic():
        audit_record(actor=acting_user, action="message.stop", obj=message)
    inference_client.abort(message.pk)


@dataclass(frozen=True)
class GenerationJob:
    request: GenerationRequest
    conversation_id: int
    status: str  # the answer's status when the job was read


def _answer_unfinished_conflict(exc: IntegrityError) -> bool:
    # PostgreSQL names the constraint; SQLite names the indexed column.
    text = str(exc)
    return UNFINISHED_ANSWER_CONSTRAINT in text or "assistant_message.conversation_id" in text


def generation_request_build(*, message_id: int) -> GenerationJob | None:
    """The engine request for an answer, with what the runner needs to know about the
    answer, or None when it is already final (a redelivered task must not answer twice)."""
    # One query: the answer and the turns before it in its conversation (newest first).
    conversation_of_answer = Message.objects.filter(pk=message_id).values("conversation_id")
    rows = list(
        Message.objects.select_related("upload")
        .filter(conversation_id=Subquery(conversation_of_answer), pk__lte=message_id)
        .order_by("-id")[: HISTORY_TURNS * 2 + 1]
    )
    if not rows or rows[0].pk != message_id or rows[0].is_final:
        return None
    answer, history = rows[0], rows[:0:-1]
    newest_image = next((m for m in reversed(history) if m.upload_id), None)
    if newest_image is not None:
        newest_image.upload = _upload_for_model(newest_image.upload_id)
    turns = []
    for message in history:
        if message.role == Message.Role.ASSISTANT and message.status != Message.Status.DONE:
            continue  # failed or stopped answers would teach the model half sentences
        image = message.upload if message is newest_image else None
        turns.append(
            ChatTurn(
                role=message.role,
                text=message.text,
                image_path=str(storage.path(image.model_copy)) if image else None,
                image_size=(image.width, image.height) if image else None,
            )
        )
    sampling = SamplingParams(**{**answer.sampling, "stop": tuple(answer.sampling.get("stop", ()))})
    request = GenerationRequest(request_id=str(answer.pk), turns=tuple(turns), sampling=sampling)
    return GenerationJob(request, conversation_id=answer.conversation_id, status=answer.status)


def _upload_for_model(upload_id) -> Upload:
    """The upload as it is once no swap of its model copy is under way: the unredacted
    copy is replaced under this row lock (safety.upload_forget_unredacted), and a path read
    in the middle of that would name a file about to be deleted. The answer is already
    pending, so once the lock is ours no later swap will touch this copy."""
    with transaction.atomic():
        return Upload.objects.select_for_update().get(pk=upload_id)


def message_generation_start(*, message_id: int, engine: str, model: str = "") -> bool:
    """Mark an answer as streaming. False if it is already final (nothing to do)."""
    updated = Message.objects.filter(pk=message_id, status__in=Message.UNFINISHED_STATUSES).update(
        status=Message.Status.STREAMING,
        engine=engine[:100],
        model=model[:200],
        started_at=timezone.now(),
    )
    return bool(updated)


def message_generation_finish(
    *,
    message_id: int,
    text: str,
    finish_reason: str,
    engine: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    boxes: list[dict] | None = None,
) -> Message | None:
    with transaction.atomic():
        answer = Message.objects.select_for_update().filter(pk=message_id).first()
        if answer is None or answer.is_final:
            return None
        answer.text = text
        answer.status = Message.Status.ABORTED if finish_reason == "abort" else Message.Status.DONE
        answer.engine = engine[:100]
        answer.prompt_tokens = prompt_tokens
        answer.completion_tokens = completion_tokens
        answer.boxes = boxes or []
        answer.finished_at = timezone.now()
        answer.save()
        audit_record(
            actor=None,
            action="message.answer",
            obj=answer,
            details={
                "status": answer.status,
                "engine": answer.engine,
                "finish_reason": finish_reason,
                "completion_tokens": completion_tokens,
            },
        )
    return answer


def message_generation_fail(
    *, message_id: int, error: str, code: str = "engine_error"
) -> Message | None:
    with transaction.atomic():
        answer = Message.objects.select_for_update().filter(pk=message_id).first()
        if answer is None or answer.is_final:
            return None
        answer.status = Message.Status.FAILED
        answer.error = error[:300]
        answer.finished_at = timezone.now()
        answer.save(update_fields=["status", "error", "finished_at"])
        audit_record(actor=None, action="message.fail", obj=answer, details={"code": code})
    return answer


def messages_fail_interrupted(*, error: str) -> int:
    """Fail every unfinished answer (used at start-up of the embedded engine)."""
    count = 0
    unfinished = Message.objects.filter(
        role=Message.Role.ASSISTANT, status__in=Message.UNFINISHED_STATUSES
    ).values_list("pk", flat=True)
    for message_id in list(unfinished):
        if message_generation_fail(message_id=message_id, error=error, code="interrupted"):
            count += 1
    return count
