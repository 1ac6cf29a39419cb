"""The chat websocket: one connection per open conversation (docs/websocket.md).

Thin on purpose: it checks the frame, calls a service through database_sync_to_async,
and relays the conversation group's events unchanged.
"""

from __future__ import annotations

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import Http404

from inference.types import SamplingParams
from ops import metrics as ops_metrics
from ops.middleware import DATABASE_DOWN_MESSAGE

from . import services
from .errors import ServiceError
from .selectors import conversation_access, message_access, message_to_dict, upload_access

MAX_FRAME_BYTES = 64 * 1024
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TRY_AGAIN_LATER = 1013


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            self.conversation = await database_sync_to_async(conversation_access)(
                user=user, conversation_id=self.scope["url_route"]["kwargs"]["conversation_id"]
            )
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except (OperationalError, InterfaceError):
            # Database away: "try again later"; the page reconnects on its own.
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        self.group = self.conversation.group_name
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.counted = True
        ops_metrics.websocket_opened()

    async def disconnect(self, code):
        # The answer keeps going and is stored: reopening the page shows it. Stopping it
        # is an explicit "stop" frame.
        if getattr(self, "counted", False):
            self.counted = False
            ops_metrics.websocket_closed()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None or len(text_data.encode()) > MAX_FRAME_BYTES:
            await self.send_error("Frames must be JSON text under 64 KB.", "invalid_frame")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_error("That frame was not valid JSON.", "invalid_json")
            return
        if not isinstance(content, dict):
            await self.send_error("Frames must be JSON objects.", "invalid_frame")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type")
        try:
            if kind == "ask":
                await self.ask(content)
            elif kind == "stop":
                await self.stop(content)
            else:
                await self.send_error(f"Unknown frame type {kind!r}.", "unknown_type")
        except ServiceError as exc:
            await self.send_error(exc.message, exc.code)
        except Http404 as exc:
            await self.send_error(str(exc) or "Not found.", "not_found")
        except (OperationalError, InterfaceError):
            await self.send_error(DATABASE_DOWN_MESSAGE, "database_unavailable")

    async def ask(self, content):
        text = content.get("text")
        if not isinstance(text, str):
            raise ServiceError("The question must be text.", code="invalid_frame")
        answer, question = await database_sync_to_async(self._ask)(
            text, content.get("upload_id"), bool(content.get("thinking", False))
        )
        await self.send_json(
            {"type": "accepted", "message_id": answer["id"], "question": question, "answer": answer}
        )

    def _ask(self, text, upload_id, thinking):
        user = self.scope["user"]
        upload = upload_access(user=user, upload_id=upload_id) if upload_id else None
        answer = services.message_ask(
            conversation=self.conversation,
            acting_user=user,
            text=text,
            upload=upload,
            sampling=SamplingParams(
                max_new_tokens=settings.DEFAULT_MAX_NEW_TOKENS, thinking=thinking
            ),
        )
        return message_to_dict(answer), message_to_dict(answer.reply_to)

    async def stop(self, content):
        await database_sync_to_async(self._stop)(content.get("message_id"))

    def _stop(self, message_id):
        user = self.scope["user"]
        message = message_access(user=user, message_id=message_id)
        if message.conversation_id != self.conversation.pk:
            raise Http404("No such message.")
        services.message_stop(message=message, acting_user=user)

    async def send_error(self, message: str, code: str):
        await self.send_json({"type": "error", "message": message, "code": code})

    async def dispatch(self, message):
        # channels hands every message to a pool thread first to tidy database connections;
        # stream events touch no database, and at thousands of chunks a second those thread
        # hops were a fifth of this process's time.
        if message.get("type") == "chat.event":
            await self.chat_event(message)
            return
        await super().dispatch(message)

    async def chat_event(self, event):
        await self.send_json(event["event"])
