"""Helpers to drive the chat websocket through the real ASGI application."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client


@database_sync_to_async
def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def open_socket(conversation_id, *, user=None, origin="http://localhost"):
    from glimpse.asgi import application

    headers = [(b"origin", origin.encode())]
    if user is not None:
        headers.append((b"cookie", f"sessionid={await session_cookie(user)}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation_id}/", headers=headers
    )
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def collect_until_final(communicator, *, timeout: float = 60.0) -> list[dict]:
    """Events up to and including the answer's `done` or `error`."""
    events = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        assert remaining > 0, f"no final event within {timeout}s; got {events}"
        event = await communicator.receive_json_from(timeout=remaining)
        events.append(event)
        if event["type"] in {"done", "error"} and "message_id" in event:
            return events
