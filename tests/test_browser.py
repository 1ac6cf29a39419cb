"""A person's first visit, in real headless Chromium against the embedded default
(daphne, SQLite, in-memory channel layer, the lite engine on a thread)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("embedded")
    env = base_env(DATA_DIR=str(data_dir))
    run_manage(env, "migrate", "--noinput")
    server, url = start_daphne(env, data_dir)
    with running(server):
        yield url, server


@pytest.fixture
def page(embedded_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


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
