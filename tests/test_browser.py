"""A person's first visit, in real headless Chromium against the embedded default
(daphne, SQLite, in-memory channel layer, the lite engine on a thread)."""

from __future__ import annotations

import base64
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from inference.fixedrate import _WORDS as FIXEDRATE_WORDS

from . import screens
from .servers import REPO, base_env, run_manage, running, start_daphne

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
# Chromium as the machine allows it: no sandbox as root, no background network calls.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def live_server(tmp_path_factory, name: str, **overrides: str):
    data_dir = tmp_path_factory.mktemp(name)
    env = base_env(DATA_DIR=str(data_dir), **overrides)
    run_manage(env, "migrate", "--noinput")
    server, url = start_daphne(env, data_dir)
    with running(server):
        yield url, server, env


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The default server (lite engine): (url, process, env)."""
    with live_server(tmp_path_factory, "embedded") as server:
        yield server


@pytest.fixture(scope="module")
def embedded_server(embedded):
    url, server, _ = embedded
    return url, server


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """The fixed-rate test engine at a few words a second, with a long answer: time to
    press Stop while it streams."""
    with live_server(
        tmp_path_factory,
        "fixedrate",
        INFERENCE_ENGINE="fixedrate",
        FIXEDRATE_TOKENS_PER_SECOND="5",
        FIXEDRATE_ANSWER_TOKENS="300",  # FIXEDRATE_ANSWER below
    ) as (url, _, _):
        yield url


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    return browser.new_page(viewport={"width": 1280, "height": 900})


@pytest.fixture
def dialogs(page) -> list[str]:
    """Every alert/confirm the page opens (dismissed at once, so none blocks it)."""
    seen: list[str] = []

    def on_dialog(dialog):
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def sign_up(page, url: str, username: str) -> None:
    page.goto(f"{url}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", "a long enough pass phrase 7")
    page.fill("#id_password2", "a long enough pass phrase 7")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def test_sign_up_upload_ask_and_watch_answer_stream(embedded_server, page, tmp_path):
    url, server = embedded_server
    shot = tmp_path / "orders.png"
    shot.write_bytes(screens.png_bytes())
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))

    sign_up(page, url, "first-user")
    page.set_input_files("#file-input", str(shot))
    page.wait_for_selector("#preview:not([hidden])")
    page.fill("#question", "Which order is still pending?")
    page.click("#send")

    answer = page.locator("li.message.assistant").last
    page.wait_for_selector(
        "li.message.assistant:not(.streaming) .meta:has-text('Answered by')", timeout=120_000
    )
    text = answer.locator(".text").inner_text()
    assert "10232" in text, text
    tokens = [f for f in frames if '"type": "token"' in f]
    assert len(tokens) >= 2, frames
    # The question keeps its screenshot, served back to its owner only.
    assert page.locator("li.message.user figure.shot img").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-answer.png"))

    # The answer is stored: a reload shows the same text.
    page.reload()
    page.wait_for_selector("li.message.assistant .text")
    assert page.locator("li.message.assistant .text").last.inner_text() == text


def test_hostile_upload_shows_readable_error(embedded_server, page, tmp_path):
    url, _ = embedded_server
    fake = tmp_path / "not-really.png"
    fake.write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    sign_up(page, url, "second-user")
    page.set_input_files("#file-input", str(fake))
    banner = page.locator("#error")
    banner.wait_for(state="visible")
    assert "svg" in banner.inner_text().lower() or "image" in banner.inner_text().lower()
    assert page.locator("#preview").is_hidden()


def test_model_html_is_never_rendered(embedded_server, page):
    """Whatever an answer contains, the page inserts it as text."""
    url, _ = embedded_server
    sign_up(page, url, "third-user")
    page.fill("#question", "<img src=x onerror=alert(1)> what is this?")
    page.click("#send")
    page.wait_for_selector("li.message.assistant:not(.streaming)", timeout=120_000)
    assert page.locator("li.message img[src='x']").count() == 0
    assert "<img src=x" in page.locator("li.message.user .text").inner_text()


def test_static_and_health(embedded_server):
    import httpx

    url, _ = embedded_server
    assert httpx.get(f"{url}/healthz").json() == {"ok": True}
    assert httpx.get(f"{url}/static/js/chat.js").status_code == 200
    assert Path(CHROMIUM).exists()


# --- helpers for the tests below ---------------------------------------------------------

QUESTION = "Which order is still pending?"
ANSWERED = "li.message.assistant:not(.streaming) .meta:has-text('Answered by')"

# A DataTransfer holding a PNG File built in the page from base64 bytes: what the browser
# hands to a drop or paste handler when a person drags or pastes a screenshot.
IMAGE_TRANSFER_JS = """(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "screenshot.png", { type: "image/png" }));
  return transfer;
}"""

# A real ClipboardEvent, as Ctrl+V in the question box fires it. Returns whether the page
# took the paste over (preventDefault).
PASTE_JS = """({ b64, text }) => {
  const transfer = new DataTransfer();
  if (text) transfer.setData("text/plain", text);
  if (b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], "image.png", { type: "image/png" }));
  }
  const event = new ClipboardEvent("paste", {
    clipboardData: transfer, bubbles: true, cancelable: true,
  });
  document.getElementById("question").dispatchEvent(event);
  return event.defaultPrevented;
}"""

# The conversation's stored messages, as the page itself would fetch them.
STORED_MESSAGES_JS = """async () => {
  const id = document.getElementById("conversation").dataset.conversationId;
  const response = await fetch(`/conversations/${id}/messages/`, {
    headers: { Accept: "application/json" },
  });
  return (await response.json()).messages;
}"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def record_frames(page) -> list[str]:
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    return frames


def token_frames(frames: list[str]) -> list[dict]:
    events = [json.loads(f) for f in frames if isinstance(f, str)]
    return [e for e in events if e.get("type") == "token"]


def is_upload_post(response) -> bool:
    return response.url.endswith("/uploads/") and response.request.method == "POST"


def assert_screenshot_question_answered(page, frames: list[str], upload_id: str) -> None:
    """Ask about the attached screenshot; the answer streams in and reads it."""
    page.fill("#question", QUESTION)
    page.click("#send")
    page.wait_for_selector(ANSWERED, timeout=120_000)
    text = page.locator("li.message.assistant .text").last.inner_text()
    assert "10232" in text, text  # the engine read the screenshot that was attached
    assert len(token_frames(frames)) >= 2, frames
    assert page.locator("li.message.user figure.shot img").count() == 1
    assert page.locator("#preview").is_hidden()  # sent: the composer is clear again
    question, answer = page.evaluate(STORED_MESSAGES_JS)
    assert question["upload_id"] == upload_id
    assert answer["status"] == "done" and answer["text"] == text


# --- uploads: drop, paste, refused -------------------------------------------------------


def test_drop_a_screenshot_on_the_drop_zone_then_ask(embedded_server, page):
    url, _ = embedded_server
    frames = record_frames(page)
    sign_up(page, url, "dropping-user")
    dropzone = page.locator("#dropzone")
    transfer = page.evaluate_handle(IMAGE_TRANSFER_JS, b64(screens.png_bytes()))

    dropzone.dispatch_event("dragenter", {"dataTransfer": transfer})
    dropzone.dispatch_event("dragover", {"dataTransfer": transfer})
    assert "dragging" in dropzone.get_attribute("class")
    with page.expect_response(is_upload_post) as upload:
        dropzone.dispatch_event("drop", {"dataTransfer": transfer})
    assert upload.value.status == 201, upload.value.text()
    page.wait_for_selector("#preview:not([hidden])")
    assert "dragging" not in dropzone.get_attribute("class")
    assert page.get_attribute("#preview-img", "src").startswith("blob:")

    assert_screenshot_question_answered(page, frames, upload.value.json()["id"])


def test_paste_a_screenshot_from_the_clipboard_then_ask(embedded_server, page):
    url, _ = embedded_server
    frames = record_frames(page)
    sign_up(page, url, "pasting-user")
    page.focus("#question")

    # Pasted text is left to the browser: no upload, no preview.
    assert page.evaluate(PASTE_JS, {"b64": None, "text": "just words"}) is False
    assert page.locator("#preview").is_hidden()

    with page.expect_response(is_upload_post) as upload:
        assert page.evaluate(PASTE_JS, {"b64": b64(screens.png_bytes()), "text": None}) is True
    assert upload.value.status == 201, upload.value.text()
    page.wait_for_selector("#preview:not([hidden])")

    assert_screenshot_question_answered(page, frames, upload.value.json()["id"])


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (
            "drawing.svg",
            "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "SVG images are not accepted",
        ),
        ("notes.txt", "Remember to water the plants.\n", "This file is not an image"),
    ],
    ids=["svg", "text"],
)
def test_refused_upload_says_why_in_the_page(
    embedded_server, page, dialogs, tmp_path, name, content, reason
):
    url, _ = embedded_server
    refused = tmp_path / name
    refused.write_text(content)
    good = tmp_path / "good.png"
    good.write_bytes(screens.png_bytes())
    sign_up(page, url, f"refused-{refused.suffix[1:]}-user")

    with page.expect_response(is_upload_post) as upload:
        page.set_input_files("#file-input", str(refused))
    assert upload.value.status == 400, upload.value.text()
    banner = page.locator("#error")
    banner.wait_for(state="visible")
    # The server's sentence, as written for people: not a status code or raw JSON.
    assert banner.inner_text().startswith(reason), banner.inner_text()
    assert "{" not in banner.inner_text()
    assert page.locator("#preview").is_hidden()
    assert dialogs == []

    # Choosing a good screenshot next clears the message.
    with page.expect_response(is_upload_post) as upload:
        page.set_input_files("#file-input", str(good))
    assert upload.value.status == 201
    page.wait_for_selector("#preview:not([hidden])")
    assert banner.is_hidden()


# --- Stop, and a composer that is usable again ----------------------------------------------

STREAMING_WORDS_JS = """(n) => {
  const answers = document.querySelectorAll("li.message.assistant");
  const last = answers[answers.length - 1];
  return Boolean(last) && last.classList.contains("streaming")
    && last.querySelector(".text").textContent.trim().split(/\\s+/).length >= n;
}"""


FIXEDRATE_ANSWER = " ".join(FIXEDRATE_WORDS[i % len(FIXEDRATE_WORDS)] for i in range(300))


def test_stop_ends_a_streaming_answer(slow_server, page):
    url = slow_server
    sign_up(page, url, "stopping-user")
    page.fill("#question", "Describe everything you can see.")
    page.click("#send")

    stop = page.locator("#stop")
    stop.wait_for(state="visible")
    assert page.locator("#send").is_disabled()
    # Words arrive one at a time (the fixed-rate engine writes 5 a second).
    page.wait_for_function(STREAMING_WORDS_JS, arg=3)
    stop.click()

    answer = page.locator("li.message.assistant").last
    page.wait_for_selector("li.message.assistant.aborted .meta:text-is('Stopped.')")
    shown = answer.locator(".text").text_content()
    # What the engine had written when it was stopped: a beginning of its whole answer.
    assert len(shown.split()) >= 3 and FIXEDRATE_ANSWER.startswith(shown), shown
    assert len(shown) < len(FIXEDRATE_ANSWER)
    assert stop.is_hidden()
    assert page.locator("#send").is_enabled()
    (stored,) = [m for m in page.evaluate(STORED_MESSAGES_JS) if m["role"] == "assistant"]
    assert stored["status"] == "aborted" and stored["text"] == shown

    # A reload shows the same stopped answer, and nothing left busy.
    page.reload()
    page.wait_for_selector("li.message.assistant.aborted .meta:text-is('Stopped.')")
    assert page.locator("li.message.assistant .text").last.text_content() == shown
    assert stop.is_hidden() and page.locator("#send").is_enabled()

    # The composer works again: the next question is accepted and streams (and stops).
    page.fill("#question", "And the next one?")
    page.press("#question", "Enter")
    page.wait_for_function("() => document.querySelectorAll('li.message.assistant').length === 2")
    assert page.locator("li.message.user .text").last.inner_text() == "And the next one?"
    assert page.input_value("#question") == ""
    page.wait_for_function(STREAMING_WORDS_JS, arg=1)
    stop.click()
    page.wait_for_function(
        "() => document.querySelectorAll('li.message.assistant.aborted').length === 2"
    )
    assert [m["status"] for m in page.evaluate(STORED_MESSAGES_JS)] == [
        "done",
        "aborted",
        "done",
        "aborted",
    ]
    assert page.locator("#error").is_hidden()


def test_refused_question_leaves_the_composer_usable(slow_server, page):
    """A question the server refuses (here: moderation) shows why, keeps what was typed
    and leaves Ask enabled."""
    url = slow_server
    sign_up(page, url, "refused-question-user")
    page.fill("#question", "How to make a bomb?")
    page.click("#send")

    banner = page.locator("#error")
    banner.wait_for(state="visible")
    assert "weapons" in banner.inner_text(), banner.inner_text()
    page.wait_for_function("() => !document.getElementById('send').disabled")
    assert page.input_value("#question") == "How to make a bomb?"
    assert page.locator("li.message").count() == 0
    assert page.locator("#stop").is_hidden()

    page.fill("#question", "What is on this page?")
    page.click("#send")
    page.wait_for_function(STREAMING_WORDS_JS, arg=1)
    assert banner.is_hidden()
    page.click("#stop")
    page.wait_for_selector("li.message.assistant.aborted")
    assert page.locator("#send").is_enabled()


# --- model output is text, never markup ----------------------------------------------------

HOSTILE_ANSWER = (
    "Sure: <img src=x onerror=alert('img')> and <script>alert('script')</script>\n"
    "![pixel](/leak.png?q=secret) <b>bold</b> "
    "<iframe src=\"javascript:alert('iframe')\"></iframe> </p><svg onload=alert('svg')>"
)


def test_html_in_a_stored_answer_is_shown_as_text(embedded, page, dialogs):
    """None of the engines echoes what it is given (the fixed-rate engine's words are
    fixed, and the streaming safety pipeline rewrites <img> and ![]() anyway), so the
    answer is stored directly, as a model could have written it, and the page loaded."""
    url, _, env = embedded
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_up(page, url, "hostile-answer-user")
    conversation_id = run_manage(
        env,
        "shell",
        "-c",
        f"""
from django.contrib.auth import get_user_model
from assistant.models import Conversation, Message
user = get_user_model().objects.get(username="hostile-answer-user")
conversation = Conversation.objects.create(owner=user, title={"<img src=x onerror=alert('title')>"!r})
question = Message.objects.create(conversation=conversation, role="user", text="What is it?")
Message.objects.create(
    conversation=conversation, role="assistant", reply_to=question, status="done",
    engine="lite", text={HOSTILE_ANSWER!r},
)
print("conversation", conversation.pk)
""",
    ).split()[-1]

    page.goto(f"{url}/c/{conversation_id}/")
    page.wait_for_selector("li.message.assistant .meta:has-text('Answered by lite')")
    page.wait_for_load_state("networkidle")
    assert page.locator("li.message.assistant .text").text_content() == HOSTILE_ANSWER
    assert page.locator("#messages img, #messages script, #messages iframe").count() == 0
    # Nothing in the answer became an element: its paragraph holds text alone.
    assert page.locator("li.message .text *").count() == 0
    assert page.locator("[onerror], [onload], b").count() == 0
    # The title is escaped by the template in the sidebar and heading too.
    assert page.locator("h1").inner_text() == "<img src=x onerror=alert('title')>"
    assert page.locator(".sidebar a").first.inner_text() == "<img src=x onerror=alert('title')>"
    # The only image on the page is the composer's (empty) preview.
    assert page.locator("img:not(#preview-img), iframe").count() == 0
    # Scripts: the two files and the messages' JSON, which the answer did not break out of.
    assert page.locator("script:not([src])").count() == 1
    assert page.locator("script#initial-messages[type='application/json']").count() == 1
    assert dialogs == []
    assert not [u for u in requested if u.endswith("/x") or "leak.png" in u], requested
