"""End to end: personal data goes in through every door and is found nowhere afterwards.

A screenshot showing a resident ID, a bank card, a phone number and an email address is
uploaded through the chat page (HTTP), asked about over the websocket with the same
values typed into the question, and sent once more through the REST API (`/v1/chat`,
image fetched from a URL). Then the whole database (every table, dumped with SQL), every
file under MEDIA_ROOT (bytes, and the stored images read again with OCR) and every log
record emitted meanwhile are searched for the raw values: zero hits.

Real components throughout: PostgreSQL, the ASGI app, the embedded lite engine (OCR +
SmolLM2). Only the internet is pretend (tests/fakeweb.py).
"""

from __future__ import annotations

import io
import logging
import re
import time

import httpx
import numpy as np
import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from PIL import Image

from accounts.services import api_key_create
from assistant.models import Upload
from assistant.safety.image_pii import ocr_lines
from tests.fakeweb import fakeweb  # noqa: F401 - the fixture
from tests.safety import shots
from tests.wsclient import collect_until_final, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUESTION = (
    f"我的身份证号是{shots.ID_NUMBER}，银行卡 {shots.CARD_GROUPED}，手机 {shots.PHONE}，"
    f"邮箱 {shots.EMAIL}. What phone number is shown on the screen?"
)


def forms(value: str) -> set[str]:
    """The spellings a leak could take: as written, digits only, case-folded."""
    squashed = re.sub(r"[\s-]", "", value)
    return {value, squashed, value.lower(), squashed.lower()}


FORBIDDEN = set().union(*(forms(v) for v in [*shots.RAW_VALUES, shots.CARD_GROUPED]))


def leaks(text: str) -> list[str]:
    folded = text.lower()
    squashed = re.sub(r"[\s-]", "", folded)
    return sorted(v for v in FORBIDDEN if v.lower() in folded or v.lower() in squashed)


class CaptureAll(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # includes args and any traceback


@pytest.fixture
def all_logs():
    handler = CaptureAll()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def dump_database() -> str:
    """Every row of every table, as text."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from introspection
            parts.extend(f"{table} {row!r}" for row in cursor.fetchall())
    return "\n".join(parts)


def chat_page_upload(user, data: bytes) -> dict:
    client = Client()
    client.force_login(user)
    assert client.get("/").status_code == 200
    conversation = client.post("/conversations/").json()
    response = client.post("/uploads/", {"image": SimpleUploadedFile("me.png", data, "image/png")})
    assert response.status_code == 201, response.content
    return {"conversation": conversation["id"], "upload": response.json()["id"]}


async def ask_over_socket(user, conversation_id, text, upload_id=None) -> list[dict]:
    communicator, connected, _ = await open_socket(conversation_id, user=user)
    assert connected
    await communicator.send_json_to({"type": "ask", "text": text, "upload_id": upload_id})
    accepted = await communicator.receive_json_from(timeout=30)
    assert accepted["type"] == "accepted", accepted
    events = [accepted, *await collect_until_final(communicator, timeout=180)]
    await communicator.disconnect()
    return events


async def ask_over_rest(user, image_url: str) -> httpx.Response:
    from glimpse.asgi import application

    _, raw_key = await database_sync_to_async(api_key_create)(user=user, name="e2e")
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {raw_key}"},
        timeout=180,
    ) as client:
        return await client.post("/v1/chat", json={"image_url": image_url, "prompt": QUESTION})


def wait_for_unredacted_copies_to_go(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while Upload.objects.filter(model_copy_unredacted=True).exists():
        assert time.monotonic() < deadline, "unredacted model copies were not removed"
        time.sleep(0.2)


def ocr_text(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        lines = ocr_lines(np.asarray(image.convert("RGB")))
    return "\n".join(line.text for line in lines)


async def test_pii_is_found_nowhere(owner, media_root, all_logs, fakeweb, settings):  # noqa: F811
    settings.REDIS_URL = ""
    settings.IMAGE_URL_ALLOWED_DOMAINS = ["images.example.com"]
    image, where = shots.profile_screenshot()
    screenshot = shots.png(image)

    # 1. The chat page: upload over HTTP, ask over the websocket (twice: the second turn
    #    uses the conversation history).
    page = await database_sync_to_async(chat_page_upload)(owner, screenshot)
    events = await ask_over_socket(owner, page["conversation"], QUESTION, page["upload"])
    assert events[-1]["type"] == "done", events[-1]
    events += await ask_over_socket(owner, page["conversation"], f"Email {shots.EMAIL}?")
    assert events[-1]["type"] == "done", events[-1]
    answers = [e["text"] for e in events if e["type"] == "done"]
    print("answers:", answers)  # shown with -s: what the lite engine made of it

    # 2. The REST API, image fetched from a URL.
    url = fakeweb.serve("https://images.example.com/profile.png", screenshot)
    response = await ask_over_rest(owner, url)
    assert response.status_code == 200, response.text
    rest_body = response.text

    await database_sync_to_async(wait_for_unredacted_copies_to_go)()

    # What the clients were told.
    assert leaks(repr(events)) == []
    assert leaks(rest_body) == []

    # The database, every table.
    dump = await database_sync_to_async(dump_database)()
    assert "[PHONE]" in dump and "[ID_NUMBER]" in dump  # the redacted question is there
    assert leaks(dump) == []

    # Positive controls: the search finds the values where they really are.
    assert leaks(ocr_text(screenshot)) and leaks(QUESTION)

    # Media: raw bytes of every file, and what OCR reads in every stored image.
    files = [p for p in media_root.rglob("*") if p.is_file()]
    uploads = await database_sync_to_async(lambda: list(Upload.objects.all()))()
    assert len(uploads) == 2 and len(files) == 4  # original + model copy, per upload
    for path in files:
        data = path.read_bytes()
        assert leaks(data.decode("latin-1")) == [], path
        read = ocr_text(data)
        assert leaks(read) == [], (path, read)
    # Pixels: each value's region of the stored original is one solid box.
    for upload in uploads:
        with Image.open(media_root / upload.original) as stored:
            grey = np.asarray(stored.convert("L"))
        for box in where.values():
            x1, y1, x2, y2 = box
            region = grey[y1:y2, x1:x2]
            assert (region < 60).mean() > 0.95 and region.std() < 20

    # Every log record emitted during all of this.
    assert all_logs.lines  # the capture did see the run's logging (a few lines)
    assert leaks("\n".join(all_logs.lines)) == []
