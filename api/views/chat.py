"""POST /v1/chat: a question about a screenshot, answered as JSON or as server-sent
events. An async view: waiting for the engine holds no thread."""

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
from ..errors import ApiError
from ..models import Endpoint
from ..serializers import ChatAskSerializer, ChatResponseSerializer, ErrorSerializer
from ..services import sampling_from
from ..sse import KEEPALIVE, sse_event, sse_response
from .base import AsyncApiView, json_object

ERRORS = {
    status: OpenApiResponse(ErrorSerializer, description=description)
    for status, description in {
        400: "Malformed JSON, a missing or invalid field, a bad image.",
        401: "Missing, invalid or revoked API key.",
        403: "The key lacks the scope, or the image domain is not allowed.",
        404: "No such conversation or upload (also for other users' objects).",
        409: "The conversation is still answering an earlier question.",
        413: "The body or the image is too large.",
        415: "The body is not JSON (Content-Type: application/json).",
        422: "The image URL could not be fetched (DNS, connection, TLS, upstream status, "
        "timeout, redirects).",
        429: "Rate limit, daily quota or concurrency cap reached; see Retry-After.",
        500: "An error on the server's side, or the engine failed while answering.",
        503: "The engine is unavailable; see Retry-After.",
        504: "No answer within the time limit.",
    }.items()
}


def chat_body(asked, answer, final: dict) -> dict:
    return {
        "response": answer.text if answer is not None else final.get("text", ""),
        "conversation_id": asked.conversation.pk,
        "message_id": asked.answer.pk,
        "image_id": str(asked.upload.pk) if asked.upload else None,
        "finish_reason": final.get("finish_reason", "stop"),
        "usage": usage_of(answer, final),
        "boxes": answer.boxes if answer is not None else [],
    }


class ChatView(AsyncApiView):
    required_scope = "chat"

    @extend_schema(
        operation_id="chat",
        summary="Ask about a screenshot",
        description=(
            "Ask a question about an image. With `stream: true` the answer comes as "
            "server-sent events (`accepted`, `token`, `box`, then `done` with the same "
            "body as the JSON answer, or `error`)."
        ),
        request=ChatAskSerializer,
        responses={
            (200, "application/json"): ChatResponseSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="With stream: true (see docs/api.md)."
            ),
            **ERRORS,
        },
        examples=[
            OpenApiExample(
                "Ask about a URL",
                request_only=True,
                value={
                    "image_url": "https://images.example.com/orders.png",
                    "prompt": "Which order is still pending?",
                },
            )
        ],
        tags=["chat"],
    )
    async def post(self, request):
        serializer = ChatAskSerializer(data=json_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        reference = data.get("image_url")
        if data.get("image_id"):
            reference = f"glimpse://uploads/{data['image_id']}"
        question = Question(
            api_key=request.auth,
            endpoint=Endpoint.CHAT,
            text=data["prompt"],
            sampling=sampling_from(
                max_tokens=data.get("max_tokens"),
                temperature=data.get("temperature"),
                top_p=data.get("top_p"),
                stop=data.get("stop"),
            ),
            image_reference=reference,
            conversation_id=data.get("conversation_id"),
        )
        asked = await ask(question)
        if data.get("stream"):
            return sse_response(self.stream(asked, request.user))
        return await self.wait(asked, request.user)

    async def wait(self, asked, user) -> Response:
        final, answer = await wait_for_answer(asked, user)
        return Response(chat_body(asked, answer, final))

    async def stream(self, asked, user):
        finished = False
        try:
            yield sse_event(
                {
                    "conversation_id": asked.conversation.pk,
                    "message_id": asked.answer.pk,
                    "image_id": str(asked.upload.pk) if asked.upload else None,
                },
                event="accepted",
            )
            async for event in answer_events(asked, timeout=settings.API_ANSWER_TIMEOUT):
                kind = event["type"]
                if kind == "idle":
                    yield KEEPALIVE
                elif kind == "token":
                    yield sse_event({"text": event["text"]}, event="token")
                elif kind == "box":
                    yield sse_event({"box": event["box"]}, event="box")
                elif kind == "done":
                    finished = True
                    answer = await finished_answer(asked.answer.pk, user)
                    yield sse_event(chat_body(asked, answer, event), event="done")
                elif kind == "error":
                    finished = True
                    error = error_from_event(event)
                    yield sse_event(error.to_response_body(), event="error")
        except ApiError as exc:  # timed out
            yield sse_event(exc.to_response_body(), event="error")
        finally:
            await asyncio.shield(leave(asked))
            if not finished:
                # The client disconnected (or the wait timed out): free the engine slot.
                await asyncio.shield(stop_answer(asked.answer.pk, user))
