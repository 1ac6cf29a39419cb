"""A GET sent straight to an ASGI application, as a server would send it: no socket, so
a test (or a benchmark) sees only what the application does."""

from __future__ import annotations

import asyncio


def http_scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def asgi_get(app, path: str, hang_up: asyncio.Event | None = None) -> int | None:
    """The response's status, or None if the client hung up first (`hang_up` set)."""
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]
    hung_up = hang_up or asyncio.Event()
    sent = []

    async def receive():
        if incoming:
            return incoming.pop()
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(http_scope(path), receive, send)
    return sent[0]["status"] if sent else None
