"""Server-sent events: framing, and the response that carries them."""

from __future__ import annotations

import json

from django.http import StreamingHttpResponse


def sse_event(data, *, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


# A comment line: ignored by clients, keeps proxies from closing a quiet connection.
KEEPALIVE = b": keep-alive\n\n"


def sse_response(stream) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
