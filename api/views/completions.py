"""POST /v1/chat/completions, OpenAI-compatible, so the official SDKs work unchanged.

Each request carries its whole history. It becomes a fresh conversation, marked as the
API's: the earlier turns are stored as they were sent (after the same PII screening as
any question; assistant turns recorded as written by the client), then the last user
message is asked through the chat service. System and developer messages are prepended
to the first user turn. The model sees one image: the newest one in the messages; older
images are not fetched.
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response

from ..answers import error_from_event
from ..asking import (
    Question,
    answer_events,
    ask,
    finished_answer,
    leave,
    stop_answer,
    usage_of,
    wait_for_answer,
)
from ..catalog import served_model_id
from ..errors import ApiError
from ..models import Endpoint
from ..serializers import ChatCompletionCreateSerializer, ChatCompletionSerializer
from ..services import sampling_from
from ..sse import KEEPALIVE, sse_event, sse_response
from .base import AsyncApiView, json_object
from .chat import ERRORS


def _content_parts(content, where: str) -> tuple[str, list[str]]:
    """(text, image references) of one message's content."""
    if content is None:  # an assistant turn without content (allowed by the serializer)
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise ApiError(
            400, f"{where}.content must be a string or a list of parts.", "invalid_content"
        )
    texts, images = [], []
    for index, part in enumerate(content):
        at = f"{where}.content.{index}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise ApiError(400, f"{at}.image_url.url is required.", "invalid_content")
            images.append(url)
        else:
            raise ApiError(
                400,
                f"{at}: only 'text' and 'image_url' parts are supported (got {kind!r}).",
                "unsupported_content",
            )
    return "\n".join(texts), images


def question_from(data: dict, api_key) -> Question:
    instructions: list[str] = []
    turns: list[tuple[str, str, list[str]]] = []
    for index, message in enumerate(data["messages"]):
        where = f"messages.{index}"
        text, images = _content_parts(message.get("content"), where)
        role = message["role"]
        if role in ("system", "developer"):
            if images:
                raise ApiError(400, f"{where}: images belong in user messages.", "invalid_content")
            instructions.append(text)
            continue
        if images and role != "user":
            raise ApiError(400, f"{where}: images belong in user messages.", "invalid_content")
        if len(images) > 1:
            raise ApiError(
                400, f"{where}: send one image per message.", "too_many_images"
            )  # fmt: skip
        turns.append((role, text, images))
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "The last message must come from the user.", "invalid_messages")
    if instructions:
        first_user = next(i for i, turn in enumerate(turns) if turn[0] == "user")
        role, text, images = turns[first_user]
        turns[first_user] = (role, "\n\n".join([*instructions, text]), images)
    with_image = [i for i, turn in enumerate(turns) if turn[2]]
    newest = with_image[-1] if with_image else None
    last = len(turns) - 1
    return Question(
        api_key=api_key,
        endpoint=Endpoint.COMPLETIONS,
        text=turns[-1][1],
        sampling=sampling_from(
            max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            stop=data.get("stop"),
        ),
        image_reference=turns[newest][2][0] if newest is not None else None,
        history=[(role, text) for role, text, _ in turns[:-1]],
        image_turn=None if newest in (None, last) else newest,
    )


def _finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


class ChatCompletionsView(AsyncApiView):
    required_scope = "chat"

    @extend_schema(
        operation_id="chat_completions",
        summary="OpenAI-compatible chat completion",
        description=(
            "Accepts the OpenAI Chat Completions request (string or text/image_url "
            "content parts). With `stream: true` the answer comes as server-sent "
            "`chat.completion.chunk` events ending in `data: [DONE]`; with "
            "`stream_options.include_usage` a last chunk carries `usage`."
        ),
        request=ChatCompletionCreateSerializer,
        responses={
            (200, "application/json"): ChatCompletionSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="With stream: true: chat.completion.chunk events, then [DONE].",
            ),
            **ERRORS,
        },
        examples=[
            OpenApiExample(
                "Image and question",
                request_only=True,
                value={
                    "model": "lite",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "Which order is still pending?"},
                                {
                                    "type": "image_url",
                                    "image_url": {"url": "data:image/png;base64,iVBORw0..."},
                                },
                            ],
                        }
                    ],
                },
            )
        ],
        tags=["chat"],
    )
    async def post(self, request):
        serializer = ChatCompletionCreateSerializer(data=json_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = served_model_id()
        if data["model"] != model:
            raise ApiError(
                404,
                f"Unknown model {data['model']!r}. This server runs {model!r} (GET /v1/models).",
                "model_not_found",
            )
        asked = await ask(question_from(data, request.auth))
        if data.get("stream"):
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            return sse_response(self.stream(asked, request.user, model, include_usage))
        return await self.wait(asked, request.user, model)

    async def wait(self, asked, user, model) -> Response:
        final, answer = await wait_for_answer(asked, user)
        return Response(
            {
                "id": f"chatcmpl-{asked.answer.pk}",
                "object": "chat.completion",
                "created": int(asked.answer.created_at.timestamp()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": answer.text if answer else final.get("text", ""),
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": _finish_reason(final.get("finish_reason")),
                    }
                ],
                "usage": usage_of(answer, final),
                "system_fingerprint": None,
                "glimpse": {
                    "conversation_id": asked.conversation.pk,
                    "message_id": asked.answer.pk,
                    "boxes": answer.boxes if answer else [],
                },
            }
        )

    async def stream(self, asked, user, model, include_usage):
        base = {
            "id": f"chatcmpl-{asked.answer.pk}",
            "object": "chat.completion.chunk",
            "created": int(asked.answer.created_at.timestamp()),
            "model": model,
            "system_fingerprint": None,
        }

        def chunk(delta: dict, finish_reason=None) -> bytes:
            body = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                body["usage"] = None
            return sse_event(body)

        finished = False
        try:
            yield chunk({"role": "assistant", "content": ""})
            async for event in answer_events(asked, timeout=settings.API_ANSWER_TIMEOUT):
                kind = event["type"]
                if kind == "idle":
                    yield KEEPALIVE
                elif kind == "token":
                    yield chunk({"content": event["text"]})
                elif kind == "done":
                    finished = True
                    answer = await finished_answer(asked.answer.pk, user)
                    yield chunk({}, _finish_reason(event.get("finish_reason")))
                    if include_usage:
                        yield sse_event({**base, "choices": [], "usage": usage_of(answer, event)})
                    yield sse_event("[DONE]")
                elif kind == "error":
                    finished = True
                    yield sse_event(error_from_event(event).to_response_body())
        except ApiError as exc:  # timed out
            yield sse_event(exc.to_response_body())
        finally:
            await asyncio.shield(leave(asked))
            if not finished:
                await asyncio.shield(stop_answer(asked.answer.pk, user))
