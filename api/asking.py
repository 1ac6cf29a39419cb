"""The steps shared by POST /v1/chat and /v1/chat/completions.

1. prepare (pool thread): settle finished answers, check the daily quotas, turn the image
   reference into an Upload, find or create the conversation;
2. join the conversation's event group (event loop);
3. start (pool thread): ask through assistant.services.message_ask under the key's
   concurrency cap;
4. the view waits for the events and answers or streams.

If step 3 refuses, whatever step 1 created for this request is removed again, so a
refused request leaves no half-written rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from django.conf import settings
from django.http import Http404

from assistant import services as assistant_services
from assistant.errors import ServiceError
from assistant.models import Conversation, Message, Upload
from assistant.safety.pipeline import upload_refused_record
from assistant.selectors import conversation_access
from inference.types import SamplingParams

from .answers import AnswerListener, error_from_event, in_worker_thread
from .errors import ApiError
from .images import image_source
from .limits import quota_check
from .services import (
    SeedTurn,
    api_answer_start,
    api_conversation_create,
    api_exchanges_settle,
    upload_delete,
)


@dataclass
class Question:
    """One API question, whatever endpoint it came through."""

    api_key: object
    endpoint: str
    text: str
    sampling: SamplingParams
    image_reference: str | None = None
    conversation_id: int | None = None
    # Earlier turns to store first (OpenAI-style requests); the image, if any, belongs to
    # the turn at `image_turn` (an index into `history`), or to the question when None.
    history: list[tuple[str, str]] = field(default_factory=list)
    image_turn: int | None = None


@dataclass
class Asked:
    conversation: Conversation
    answer: Message
    upload: Upload | None
    listener: AnswerListener


@dataclass
class _Prepared:
    conversation: Conversation
    upload: Upload | None
    new_conversation: bool = False
    new_upload: bool = False


def service_error(exc: ServiceError) -> ApiError:
    retry = settings.API_UNAVAILABLE_RETRY_AFTER if exc.status in (429, 503) else None
    retry = getattr(exc, "retry_after", None) or retry
    return ApiError(exc.status, exc.message, exc.code, retry_after=retry)


@in_worker_thread
def _prepare(question: Question) -> _Prepared:
    api_key = question.api_key
    user = api_key.user
    api_exchanges_settle(user=user)
    quota_check(api_key=api_key)
    upload, new_upload = None, False
    if question.image_reference:
        source = image_source(question.image_reference, api_key=api_key)
        if source.upload is not None:
            upload = source.upload
        else:
            try:
                upload = assistant_services.upload_create(owner=user, data=source.data)
            except ServiceError as exc:
                if exc.status < 500:  # refused for what the image is (reason only)
                    upload_refused_record(actor=user, code=exc.code, api_key=api_key)
                raise
            new_upload = True
    try:
        if question.conversation_id is not None:
            try:
                conversation = conversation_access(
                    user=user, conversation_id=question.conversation_id
                )
            except Http404:
                raise ApiError(
                    404, f"No such conversation: {question.conversation_id}.",
                    "conversation_not_found",
                ) from None  # fmt: skip
            return _Prepared(conversation, upload, new_upload=new_upload)
        turns = [
            SeedTurn(
                role=role,
                text=text,
                upload=upload if index == question.image_turn else None,
            )
            for index, (role, text) in enumerate(question.history)
        ]
        conversation = api_conversation_create(
            api_key=api_key, endpoint=question.endpoint, turns=turns
        )
        return _Prepared(conversation, upload, new_conversation=True, new_upload=new_upload)
    except Exception:
        if new_upload:
            upload_delete(upload=upload, acting_user=user)
        raise


@in_worker_thread
def _start(question: Question, prepared: _Prepared) -> Message:
    try:
        return api_answer_start(
            api_key=question.api_key,
            conversation=prepared.conversation,
            text=question.text,
            upload=prepared.upload if question.image_turn is None else None,
            sampling=question.sampling,
            endpoint=question.endpoint,
        )
    except Exception:
        _undo(question, prepared)
        raise


def _undo(question: Question, prepared: _Prepared) -> None:
    user = question.api_key.user
    if prepared.new_conversation:
        # Deletes a seeded turn's upload with it.
        assistant_services.conversation_delete(conversation=prepared.conversation, acting_user=user)
    if prepared.new_upload and Upload.objects.filter(pk=prepared.upload.pk).exists():
        upload_delete(upload=prepared.upload, acting_user=user)


async def ask(question: Question) -> Asked:
    """Steps 1 to 3. Raises ApiError; on success the caller must `listener.leave()`.

    The steps run shielded: their database work happens on pool threads, which a
    cancellation (the client hung up) cannot stop halfway. If the client is gone, what was
    prepared is undone, or the answer that was already started is stopped."""
    client_gone = asyncio.Event()
    steps = asyncio.ensure_future(_ask(question, client_gone))
    try:
        return await asyncio.shield(steps)
    except asyncio.CancelledError:
        client_gone.set()
        try:
            asked = await steps
        except BaseException:
            raise asyncio.CancelledError from None
        await asked.listener.leave()
        await stop_answer(asked.answer.pk, question.api_key.user)
        raise


async def _ask(question: Question, client_gone: asyncio.Event) -> Asked:
    try:
        prepared = await _prepare(question)
        if client_gone.is_set():
            await in_worker_thread(_undo)(question, prepared)
            raise asyncio.CancelledError
        listener = await AnswerListener(prepared.conversation.group_name).join()
        try:
            answer = await _start(question, prepared)
        except BaseException:
            await listener.leave()
            raise
    except ServiceError as exc:
        raise service_error(exc) from None
    return Asked(prepared.conversation, answer, prepared.upload, listener)


async def wait_for_answer(asked: Asked, user) -> tuple[dict, Message | None]:
    """(final event, stored answer) of a non-streaming request. Stops the answer when the
    wait ends early (timeout, client gone); raises ApiError when the answer failed."""
    if asked.answer.status == Message.Status.DONE:
        # Answered from the answer cache while it was asked: nothing to wait for (its
        # events still go to the conversation's other listeners).
        await asyncio.shield(asked.listener.leave())
        return cached_final_event(asked.answer), asked.answer
    final = None
    try:
        async for event in asked.listener.events(
            asked.answer.pk, timeout=settings.API_ANSWER_TIMEOUT
        ):
            if event["type"] in ("done", "error"):
                final = event
    except (ApiError, asyncio.CancelledError):
        # Nobody will read this answer: free the engine slot.
        await asyncio.shield(stop_answer(asked.answer.pk, user))
        raise
    finally:
        await asyncio.shield(asked.listener.leave())
    if final["type"] == "error":
        raise error_from_event(final)
    return final, await finished_answer(asked.answer.pk, user)


def cached_final_event(answer: Message) -> dict:
    """The "done" event of an answer that was final when it was asked."""
    return {
        "type": "done",
        "message_id": answer.pk,
        "text": answer.text,
        "finish_reason": "stop",
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
        },
        "engine": answer.engine,
    }


@in_worker_thread
def stop_answer(message_id: int, acting_user) -> None:
    """Abort an answer nobody is waiting for any more, so its engine slot is freed."""
    answer = Message.objects.filter(pk=message_id).first()
    if answer is not None and not answer.is_final:
        assistant_services.message_stop(message=answer, acting_user=acting_user)


@in_worker_thread
def finished_answer(message_id: int, user) -> Message | None:
    """The stored answer, with the ledger settled so quotas see its tokens at once."""
    api_exchanges_settle(user=user)
    return Message.objects.filter(pk=message_id).first()


def usage_of(answer: Message | None, event: dict | None = None) -> dict:
    if answer is not None and (answer.prompt_tokens or answer.completion_tokens):
        prompt, completion = answer.prompt_tokens, answer.completion_tokens
    else:
        usage = (event or {}).get("usage") or {}
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
