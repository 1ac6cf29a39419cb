"""Runs one answer: build the request from the database, drive the engine, stream the
events to the conversation, store the result.

The same function runs in the embedded engine thread and inside the Celery task on a GPU
worker, so both modes stream, redact, persist and fail in exactly the same way. It is
idempotent per message id: an answer that is already final is never generated again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from django.conf import settings
from django.db import close_old_connections, connections

from assistant.models import Message
from assistant.safety.pii import StreamingRedactor
from assistant.services import (
    generation_request_build,
    message_generation_fail,
    message_generation_finish,
    message_generation_start,
)

from . import aborts
from .engine import Engine
from .events import publish
from .types import Box, Done, EngineUnavailable, Error, GenerationRequest, Token

logger = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = "The assistant is not available right now. Please try again in a minute."
INTERNAL_ERROR_MESSAGE = "Something went wrong while answering. Please try again."


class EventStream:
    """Numbered events for one answer: the client can tell when it missed one."""

    def __init__(self, group: str, message_id: int):
        self.group = group
        self.message_id = message_id
        self.seq = 0

    def emit(self, kind: str, **payload) -> None:
        publish(
            self.group, {"type": kind, "message_id": self.message_id, "seq": self.seq, **payload}
        )
        self.seq += 1


def fail_message(message_id: int, error: str, code: str, stream: EventStream | None = None) -> None:
    """Mark an answer failed and tell the conversation, from wherever the failure is seen.

    Without the answer's own stream (the failure came before it started) the error event
    starts a fresh sequence; clients treat an error as final whatever its number."""
    answer = message_generation_fail(message_id=message_id, error=error, code=code)
    if answer is not None:
        stream = stream or EventStream(answer.conversation.group_name, message_id)
        stream.emit("error", message=error, code=code)


def run_generation(message_id: int, engine: Engine) -> None:
    close_old_connections()
    stream = None
    try:
        request = generation_request_build(message_id=message_id)
        if request is None:
            return
        conversation_id = Message.objects.values_list("conversation_id", flat=True).get(
            pk=message_id
        )
        stream = EventStream(f"conversation.{conversation_id}", message_id)
        _run(request, stream, engine)
    except Exception:
        # Content never reaches the log; the id is enough to find the audit trail.
        logger.exception("generation failed for message %s", message_id)
        fail_message(message_id, INTERNAL_ERROR_MESSAGE, "internal", stream)
    finally:
        aborts.clear(message_id)
        # Runner threads are long-lived and not request-scoped: give the connection back
        # instead of holding one per idle thread (reconnecting costs milliseconds).
        connections.close_all()


def _run(request: GenerationRequest, stream: EventStream, engine: Engine) -> None:
    message_id = stream.message_id
    if not message_generation_start(message_id=message_id, engine=engine.name):
        return
    stream.emit("start", engine=engine.name)

    watcher = aborts.AbortWatcher(message_id)
    redactor = StreamingRedactor()
    sent: list[str] = []
    pending = ""
    boxes: list[dict] = []
    last_flush = time.monotonic()
    abort_sent = False

    def flush() -> None:
        nonlocal pending, last_flush
        if pending:
            stream.emit("token", text=pending)
            sent.append(pending)
            pending = ""
        last_flush = time.monotonic()

    try:
        events = engine.generate(request)
    except EngineUnavailable as exc:
        fail_message(message_id, str(exc) or UNAVAILABLE_MESSAGE, exc.code, stream)
        return

    for event in events:
        if not abort_sent and watcher.check():
            engine.abort(request.request_id)
            abort_sent = True
        if isinstance(event, Token):
            pending += redactor.feed(event.text)
            if time.monotonic() - last_flush >= settings.STREAM_FLUSH_INTERVAL:
                flush()
        elif isinstance(event, Box):
            flush()
            box = {k: v for k, v in asdict(event).items() if k != "type"}
            boxes.append(box)
            stream.emit("box", box=box)
        elif isinstance(event, Done):
            pending += redactor.flush()
            flush()
            text = "".join(sent)
            finish_reason = "abort" if abort_sent else event.finish_reason
            message_generation_finish(
                message_id=message_id,
                text=text,
                finish_reason=finish_reason,
                engine=event.engine or engine.name,
                prompt_tokens=event.usage.prompt_tokens,
                completion_tokens=event.usage.completion_tokens,
                boxes=boxes,
            )
            stream.emit(
                "done",
                text=text,
                finish_reason=finish_reason,
                usage=asdict(event.usage),
                engine=event.engine or engine.name,
            )
            return
        elif isinstance(event, Error):
            fail_message(message_id, event.message, event.code, stream)
            return
    # An engine must end with Done or Error; one that just stops has failed.
    fail_message(
        message_id, "The answer stopped unexpectedly. Please try again.", "engine_ended", stream
    )
