"""Writes made by the API: starting answers (with the concurrency cap and the ledger row),
conversations seeded from an OpenAI-style message list, settling token counts, and the
deletions the chat page has no service for. Each with its audit record, in one
transaction."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

from accounts.models import ApiKey
from assistant import services as assistant_services
from assistant.errors import ServiceError
from assistant.models import Conversation, Message, Upload
from assistant.safety.pipeline import (
    history_screened_record,
    screen_history,
    screen_prompt,
    screen_question,
)
from assistant.services import AskStarted
from audit.services import audit_batch, audit_record
from inference.types import SamplingParams

from .limits import concurrency_check, quota_check, usage_today
from .models import ApiConversation, ApiExchange

# Seeded assistant turns were written by the client, not by an engine of ours.
CLIENT_SUPPLIED_ENGINE = "client"


@dataclass(frozen=True)
class SeedTurn:
    role: str  # "user" or "assistant"
    text: str
    upload: Upload | None = None


def api_key_configure(*, api_key: ApiKey, acting_user, allowed_image_domains: list[str]) -> ApiKey:
    with transaction.atomic():
        api_key.allowed_image_domains = list(dict.fromkeys(allowed_image_domains))
        api_key.save(update_fields=["allowed_image_domains"])
        audit_record(
            actor=acting_user,
            action="api_key.configure",
            obj=api_key,
            details={"prefix": api_key.prefix, "image_domains": len(allowed_image_domains)},
        )
    return api_key


def api_ask(
    *,
    api_key: ApiKey,
    endpoint: str,
    text: str,
    upload: Upload | None,
    sampling: SamplingParams,
    conversation: Conversation | None = None,
    turns: list[SeedTurn] = (),
) -> tuple[Conversation, AskStarted]:
    """Ask through the chat service (same safety pipeline, audit and engine path as the
    chat page) under the key's concurrency cap, and enter the answer in the ledger. With
    no `conversation`, a new one marked as the API's, holding the earlier `turns` that
    the client sent (an OpenAI-style request carries its whole history each time).

    Everything is written in one transaction (the conversation, the question, the answer
    and its ledger row commit together or not at all); the engine hand-off is left to
    the caller, which makes it once it listens for the answer's events
    (AskStarted.hand_off; an answer from the cache needs none)."""
    user = api_key.user
    # Screened first, outside the transaction below: a block raises before anything is
    # written, and its audit record must not be rolled back with that transaction. The
    # history is moderated like the question. A block in a new conversation is recorded
    # against the key: there is no conversation to name.
    history_verdict = (
        screen_history(
            texts=[turn.text for turn in turns],
            uploads=[turn.upload for turn in turns],
            acting_user=user,
            obj=api_key,
        )
        if turns
        else None
    )
    screened = screen_question(
        conversation=conversation if conversation is not None else api_key,
        acting_user=user,
        text=text,
        upload=upload,
    )
    with transaction.atomic(), audit_batch():
        # The key row lock makes "count running answers, then start one" atomic across
        # processes. NO KEY UPDATE: rows that merely reference the key (a concurrent
        # request's ApiConversation) must not wait for it.
        _api_key_lock(api_key)
        # Running answers and today's usage in one query, under the key's lock: requests
        # racing past the early quota check (which spares over-quota callers any writes)
        # must not start more answers than the cap and the quotas allow.
        used = usage_today(api_key=api_key)
        concurrency_check(api_key=api_key, running=used.key_running)
        quota_check(api_key=api_key, used=used)
        if used.unsettled_final:
            api_exchanges_settle(user=user)
        new_conversation = conversation is None
        if new_conversation:
            conversation = _conversation_create(
                api_key=api_key,
                endpoint=endpoint,
                turns=turns,
                history_verdict=history_verdict,
                # The first question names the conversation, as in the chat page.
                title="" if turns else screened.text[:80],
            )
        started = assistant_services.message_ask_start(
            conversation=conversation,
            acting_user=user,
            text=text,
            upload=upload,
            sampling=sampling,
            screened=screened,
            new_conversation=new_conversation and not turns,
        )
        answer = started.answer
        # An answer from the answer cache is final already: its ledger entry is settled now.
        ApiExchange.objects.create(
            user=user,
            api_key=api_key,
            answer=answer,
            endpoint=endpoint,
            settled=answer.is_final,
            prompt_tokens=answer.prompt_tokens if answer.is_final else 0,
            completion_tokens=answer.completion_tokens if answer.is_final else 0,
        )
    return conversation, started


def _api_key_lock(api_key: ApiKey) -> None:
    """Lock the key's row until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway). Written out: it runs on every API question, and the ORM took half a
    millisecond to build this one line."""
    connection = transaction.get_connection()
    if connection.features.has_select_for_update:
        table = connection.ops.quote_name(ApiKey._meta.db_table)
        with connection.cursor() as cursor:
            sql = f"SELECT 1 FROM {table} WHERE id = %s FOR NO KEY UPDATE"  # noqa: S608
            cursor.execute(sql, [api_key.pk])


def _conversation_create(
    *, api_key: ApiKey, endpoint: str, turns: list[SeedTurn], history_verdict, title: str
) -> Conversation:
    user = api_key.user
    conversation = assistant_services.conversation_create(owner=user, title=title)
    ApiConversation.objects.create(conversation=conversation, api_key=api_key, endpoint=endpoint)
    redactions = 0
    for turn in turns:
        # History is stored like any question: through the same PII screening.
        screened = screen_prompt(turn.text)
        redactions += sum(screened.redactions.values())
        Message.objects.create(
            conversation=conversation,
            role=turn.role,
            text=screened.text,
            upload=turn.upload if turn.role == Message.Role.USER else None,
            status=Message.Status.DONE,
            engine=CLIENT_SUPPLIED_ENGINE if turn.role == Message.Role.ASSISTANT else "",
        )
    if turns:
        audit_record(
            actor=user,
            action="conversation.seed",
            obj=conversation,
            details={"turns": len(turns), "redactions": redactions, "key": api_key.prefix},
        )
        history_screened_record(
            verdict=history_verdict, conversation=conversation, acting_user=user
        )
    return conversation


def api_exchanges_settle(*, user) -> int:
    """Copy the token counts of the user's finished API answers into the ledger (one
    UPDATE). Quotas do not wait for this (they read an unsettled row's answer directly);
    it keeps the counts once the answers are deleted."""
    answer = Message.objects.filter(pk=OuterRef("answer_id"))
    return (
        ApiExchange.objects.filter(user=user, settled=False)
        .exclude(answer__status__in=Message.UNFINISHED_STATUSES)
        .update(
            settled=True,
            prompt_tokens=Coalesce(Subquery(answer.values("prompt_tokens")), 0),
            completion_tokens=Coalesce(Subquery(answer.values("completion_tokens")), 0),
        )
    )


def api_exchange_settle(*, answer: Message) -> None:
    """Settle the ledger row of one finished answer."""
    if answer.is_final:
        ApiExchange.objects.filter(answer=answer, settled=False).update(
            settled=True,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
        )


def api_conversation_delete(*, conversation: Conversation, acting_user) -> None:
    # Settle first: the ledger keeps the counts after the answers are gone.
    api_exchanges_settle(user=conversation.owner)
    assistant_services.conversation_delete(conversation=conversation, acting_user=acting_user)


def message_exchange_delete(*, message: Message, acting_user) -> None:
    """Delete one question with its answer. Refused while the answer is being written."""
    question = message.reply_to if message.role == Message.Role.ASSISTANT else message
    if question is None:
        raise ServiceError("This message cannot be deleted on its own.", code="not_deletable")
    with transaction.atomic():
        answer = Message.objects.select_for_update().filter(reply_to=question).first()
        if answer is not None and answer.status in Message.UNFINISHED_STATUSES:
            raise ServiceError(
                "The answer is still being written; stop it or wait before deleting.",
                code="message_busy",
                status=409,
            )
        if answer is not None:
            api_exchange_settle(answer=answer)
        audit_record(
            actor=acting_user,
            action="message.delete",
            obj=question,
            details={
                "conversation": question.conversation_id,
                "answer": answer.pk if answer else None,
            },
        )
        question.delete()  # the answer goes with it (reply_to cascades)


def upload_delete(*, upload: Upload, acting_user) -> None:
    """Delete an uploaded image and its files. Messages that used it keep their text."""
    from assistant import storage

    with transaction.atomic():
        audit_record(
            actor=acting_user,
            action="upload.delete",
            obj=upload,
            details={"used_by": Message.objects.filter(upload=upload).count()},
        )
        paths = (upload.original, upload.model_copy)
        upload.delete()
        transaction.on_commit(lambda: storage.delete(*paths))


def sampling_from(*, max_tokens=None, temperature=None, top_p=None, stop=()) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=max_tokens or settings.DEFAULT_MAX_NEW_TOKENS,
        temperature=0.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        stop=tuple(stop or ()),
    ).clamped()
