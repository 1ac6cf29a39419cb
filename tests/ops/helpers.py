"""Real processes for the operations tests: a private redis-server (so restarting it never
touches the shared one), Celery workers and beat, a TCP proxy in front of PostgreSQL that
a test can cut, and a websocket client that behaves like the chat page."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from ..servers import PYTHON, Process, free_port, wait_for_log

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """A throwaway redis-server on loopback, without persistence: a restart loses every
    key, the harshest case (queue, channel-layer groups, leases, heartbeats)."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.log_dir / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.log_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


def start_beat(env: dict[str, str], log_dir: Path) -> Process:
    process = Process(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "glimpse",
            "beat",
            "-l",
            "INFO",
            "-s",
            str(log_dir / "celerybeat-schedule"),
        ],
        env,
        log_dir / "beat.log",
    )
    return wait_for_log(process, "beat: Starting", timeout=60, what="celery beat")


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or "condition not met in time")


def wait_ready(url: str, *, timeout: float = 30) -> dict:
    def ready():
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    return wait_until(ready, timeout=timeout, message=f"{url}/readyz never said ready")


class TcpProxy:
    """A loopback TCP proxy in front of PostgreSQL that a test can cut and restore,
    like a network partition between web and database (the shared server stays up)."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.start()


# --- a websocket client that behaves like static/js/chat.js ------------------------------


def ws_headers(url: str, cookie: str) -> dict:
    return {"Cookie": f"sessionid={cookie}", "Origin": url.replace("127.0.0.1", "localhost")}


async def ask_and_collect(url, conversation_id, cookie, payload, *, timeout=60.0, on_event=None):
    """Send one question; return every event up to the answer's final one."""
    import websockets

    ws_url = url.replace("http://", "ws://") + f"/ws/conversations/{conversation_id}/"
    events = []
    async with websockets.connect(ws_url, additional_headers=ws_headers(url, cookie)) as sock:
        await sock.send(json.dumps(payload))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            raw = await asyncio.wait_for(sock.recv(), timeout=max(0.1, deadline - loop.time()))
            event = json.loads(raw)
            event["_t"] = time.monotonic()
            events.append(event)
            if on_event is not None:
                await on_event(event, sock)
            if event["type"] == "error" and "message_id" not in event:
                return events  # the question itself was refused
            if event["type"] in {"done", "error"} and "seq" in event:
                return events


def stored_messages(url: str, conversation_id: int, cookie: str) -> list[dict]:
    response = httpx.get(
        f"{url}/conversations/{conversation_id}/messages/",
        cookies={"sessionid": cookie},
        headers={"Accept": "application/json"},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["messages"]


async def follow_like_the_page(
    url, conversation_id, cookie, payload, *, timeout=60.0, on_event=None
):
    """What static/js/chat.js does: ask, render the stream; when the socket closes,
    reconnect with back-off and read the stored conversation (GET .../messages/); stop
    when the answer is final, from an event or from the stored copy.

    Returns {"events", "reconnects", "final": {"status", "text", "via"}}."""
    import websockets

    ws_url = url.replace("http://", "ws://") + f"/ws/conversations/{conversation_id}/"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    events, reconnects, delay = [], 0, 0.5
    answer_id = None
    asked = False
    while loop.time() < deadline:
        try:
            async with websockets.connect(
                ws_url, additional_headers=ws_headers(url, cookie), open_timeout=5
            ) as sock:
                delay = 0.5
                if not asked:
                    await sock.send(json.dumps(payload))
                    asked = True
                elif answer_id is not None:
                    # Catch up after a reconnect, as the page does.
                    stored = await asyncio.to_thread(stored_messages, url, conversation_id, cookie)
                    mine = next(m for m in stored if m["id"] == answer_id)
                    if mine["status"] not in {"pending", "streaming"}:
                        return {
                            "events": events,
                            "reconnects": reconnects,
                            "final": {
                                "status": mine["status"],
                                "text": mine["text"],
                                "via": "resync",
                            },
                        }
                while True:
                    raw = await asyncio.wait_for(
                        sock.recv(), timeout=max(0.1, deadline - loop.time())
                    )
                    event = json.loads(raw)
                    event["_t"] = time.monotonic()
                    events.append(event)
                    if event["type"] == "accepted":
                        answer_id = event["message_id"]
                    if on_event is not None:
                        await on_event(event, sock)
                    if (
                        event.get("message_id") == answer_id
                        and event["type"] in {"done", "error"}
                        and "seq" in event
                    ):
                        status = "done" if event["type"] == "done" else "failed"
                        return {
                            "events": events,
                            "reconnects": reconnects,
                            "final": {
                                "status": status,
                                "text": event.get("text", ""),
                                "via": "event",
                            },
                        }
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
            reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)
    raise AssertionError(f"no final answer within {timeout}s; events: {events}")


async def ask_only(url, conversation_id, cookie, payload) -> dict:
    """Send a question and return the `accepted` event (or the refusal); the answer goes on
    without this socket."""
    import websockets

    ws_url = url.replace("http://", "ws://") + f"/ws/conversations/{conversation_id}/"
    async with websockets.connect(ws_url, additional_headers=ws_headers(url, cookie)) as sock:
        await sock.send(json.dumps(payload))
        while True:
            event = json.loads(await asyncio.wait_for(sock.recv(), timeout=20))
            if event["type"] in {"accepted", "error"}:
                return event


class Supervisor:
    """Restarts a process when it exits, as systemd's Restart=always does for the workers
    in docs/deploy/glimpse-worker@.service."""

    def __init__(self, start):
        self._start = start
        self.process = start()
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            if not self.process.alive():
                self.process = self._start()
                self.restarts += 1

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self.process.stop()
