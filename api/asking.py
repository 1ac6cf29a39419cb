"""The steps shared by POST /v1/chat and /v1/chat/completions.

1. open (one pool-thread hop): check the daily quotas, turn
   the image reference into an Upload, then in one transaction create the conversation
   (unless the request continues one), the question, the answer and its ledger row
   (api.services.api_ask);
2. unless the answer is final already (the answer cache): join the conversation's event
   group, then hand the answer to the engine. The order matters: joined before the
   hand-off, the listener cannot miss an event;
3. the view waits for the events and answers or streams.

If step 1 refuses, the upload it created for this request is removed again and the
transaction wrote nothing, so a refused request leaves no half-written rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from django.conf import settings
from django.http import Http404

from assistant import services as assistant_services
from assistant.errors import ServiceError
from assistant.models import Conversation, Message, Upload
from assistant.safety.pipeline import upload_refused_record
from assistant.selectors import conversation_access
from assistant.services import AskStarted
from inference.types import SamplingParams

from .answers import AnswerListener, error_from_event, in_worker_thread
from .errors import ApiError
from .images import UPLOAD_SCHEME, image_source
from .limits import quota_check
from .services import SeedTurn, api_ask, api_exchange_settle, upload_delete


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
    listener: AnswerListener | None  # None: the answer was final when it was asked


@dataclass
class _Opened:
    conversation: Conversation
    upload: Upload | None
    started: AskStarted


def service_error(exc: ServiceError) -> ApiError:
    retry = settings.API_UNAVAILABLE_RETRY_AFTER if exc.status in (429, 503) else None
    retry = getattr(exc, "retry_after", None) or retry
    return ApiError(exc.status, exc.message, exc.code, retry_after=retry)


@in_worker_thread
def _open(question: Question) -> _Opened:
    api_key = question.api_key
    user = api_key.user
    reference = question.image_reference
    if reference and not reference.startswith(UPLOAD_SCHEME):
        # New image bytes are fetched and stored before the answer starts: a caller over
        # quota is refused first. (api_ask checks the quota again under the key's lock,
        # for every request.)
        quota_check(api_key=api_key)
    upload, new_upload = None, False
    if reference:
        source = image_source(reference, api_key=api_key)
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
        conversation = None
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
        turns = [
            SeedTurn(
                role=role,
                text=text,
                upload=upload if index == question.image_turn else None,
            )
            for index, (role, text) in enumerate(question.history)
        ]
        conversation, started = api_ask(
            api_key=api_key,
            endpoint=question.endpoint,
            text=question.text,
            upload=upload if question.image_turn is None else None,
            sampling=question.sampling,
            conversation=conversation,
            turns=turns if conversation is None else [],
        )
    except Exception:
        if new_upload and Upload.objects.filter(pk=upload.pk).exists():
            upload_delete(upload=upload, acting_user=user)
        raise
    return _Opened(conversation, upload, started)


@in_worker_thread
def _hand_off(started: AskStarted) -> None:
    started.hand_off()


async def ask(question: Question) -> Asked:
    """Steps 1 and 2. Raises ApiError; on success the caller must `leave(asked)`.

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
        await leave(asked)
        await stop_answer(asked.answer.pk, question.api_key.user)
        raise


async def _ask(question: Question, client_gone: asyncio.Event) -> Asked:
    try:
        opened = await _open(question)
    except ServiceError as exc:
        raise service_error(exc) from None
    answer = opened.started.answer
    listener = None
    if not answer.is_final:
        # The hand-off must happen whatever comes of the join or the client: an answer
        # left unsubmitted would stay pending until the watchdog failed it.
        try:
            if not client_gone.is_set():
                listener = await AnswerListener(opened.conversation.group_name).join()
        finally:
            await _hand_off(opened.started)
    return Asked(opened.conversation, answer, opened.upload, listener)


async def wait_for_answer(asked: Asked, user) -> tuple[dict, Message | None]:
    """(final event, stored answer) of a non-streaming request. Stops the answer when the
    wait ends early (timeout, client gone); raises ApiError when the answer failed."""
    if asked.listener is None:
        # Answered from the answer cache while it was asked: nothing to wait for (its
        # events still go to the conversation's other listeners).
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
        await asyncio.shield(leave(asked))
    if final["type"] == "error":
        raise error_from_event(final)
    return final, await finished_answer(asked.answer.pk, user)


async def answer_events(asked: Asked, *, timeout: float) -> AsyncIterator[dict]:
    """The answer's events as the engine sends them (see AnswerListener.events), or, for
    an answer that was final when it was asked (the answer cache), the same events made
    from the stored answer."""
    if asked.listener is None:
        answer = asked.answer
        for box in answer.boxes or []:
            yield {"type": "box", "message_id": answer.pk, "box": box}
        if answer.text:
            yield {"type": "token", "message_id": answer.pk, "text": answer.text}
        yield cached_final_event(answer)
        return
    async for event in asked.listener.events(asked.answer.pk, timeout=timeout):
        yield event


async def leave(asked: Asked) -> None:
    if asked.listener is not None:
        await asked.listener.leave()


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
    """The stored answer, its ledger row settled."""
    answer = Message.objects.filter(pk=message_id).first()
    if answer is not None:
        api_exchange_settle(answer=answer)
    return answer


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
