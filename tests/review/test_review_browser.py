"""The reviewer's and the user's side in real headless Chromium against a real daphne
(embedded default: SQLite, the engine not needed because the answers are seeded).

Flow: a user rates and reports an answer in the chat page; a reviewer opens the flagged
conversation (screenshot with grounding boxes), resolves it with a verdict, exports the
labelled items, and looks at the dashboard (screenshot saved to docs/img/).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ..servers import REPO, base_env, run_manage, running, start_daphne
from ..test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from .seed import PASSWORD

pytestmark = [pytest.mark.browser]

# The screenshot in docs/review.md; refreshed only on request, so a test run leaves the
# work tree clean: UPDATE_DOCS_SCREENSHOTS=1 pytest tests/review/test_review_browser.py
DOCS_SHOT = REPO / "docs" / "img" / "review-dashboard.png"


@pytest.fixture(scope="module")
def review_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("review-browser")
    # No answers are generated here: no engine warm-up, no random sampling noise.
    env = base_env(DATA_DIR=str(data_dir), INFERENCE_WARMUP="0", REVIEW_SAMPLE_RATE="0")
    run_manage(env, "migrate", "--noinput")
    out = run_manage(
        env,
        "shell",
        "-c",
        "import json; from tests.review.seed import seed_demo; print(json.dumps(seed_demo()))",
    )
    seeded = json.loads(out.strip().splitlines()[-1])
    server, url = start_daphne(env, data_dir)
    with running(server):
        yield url, seeded


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(browser, url: str, username: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


def user_rates_and_reports_an_answer(browser, url: str, seeded: dict) -> None:
    page = log_in(browser, url, seeded["owner"])
    page.goto(f"{url}/c/{seeded['reportable_conversation']}/")
    answer = page.locator(f"li.message.assistant[data-message-id='{seeded['reportable_message']}']")
    up = answer.locator(".feedback button.up")
    up.click()
    page.wait_for_selector(".feedback button.up[aria-pressed=true]")
    answer.locator(".feedback button.report").click()
    answer.locator(".report-form select").select_option("wrong")
    answer.locator(".report-form button[type=submit]").click()
    page.wait_for_selector(".feedback .thanks:has-text('Reported')")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-feedback.png"))

    # After a reload the page remembers both.
    page.reload()
    page.wait_for_selector(".feedback button.up[aria-pressed=true]")
    assert answer.locator(".feedback button.report").is_hidden()

    # This person is no reviewer: none of the review pages open for them.
    for path in ("/review/", f"/review/items/{seeded['flagged_item']}/", "/review/dashboard/"):
        response = page.goto(f"{url}{path}", wait_until="commit")
        assert response.status == 403, path
        # The ASGI path of the request-context middleware names every response.
        assert len(response.headers["x-request-id"]) == 32
    page.context.close()


def test_user_report_reaches_reviewer_who_resolves_exports_and_sees_dashboard(
    review_server, browser
):
    # One flow, in order: the reviewer's queue must show the report the user just made.
    url, seeded = review_server
    user_rates_and_reports_an_answer(browser, url, seeded)

    page = log_in(browser, url, seeded["reviewer"])
    page.goto(f"{url}/review/")
    queue = page.locator("#queue")
    assert queue.locator("tr.source-moderation").count() >= 1
    assert queue.locator("tr.source-report").count() >= 1  # the report made above

    page.click(f"#queue a[href='/review/items/{seeded['flagged_item']}/']")
    page.wait_for_selector("figure.review-shot[data-boxes-drawn='2']")
    shot = page.locator("figure.review-shot img")
    assert shot.evaluate("img => img.naturalWidth") == 1280
    # The boxes sit on the screenshot where the model pointed (pixels scaled to display).
    box = page.locator("figure.review-shot .box").first.bounding_box()
    image = shot.bounding_box()
    scale = image["width"] / 1280
    assert abs(box["x"] - image["x"] - 620 * scale) < 4
    assert page.locator("text=output: harassment").first.is_visible()
    assert page.locator("dl.answer-meta >> text=lite:smollm2-135m").is_visible()
    assert page.locator("text=redacted copy (PII boxed out)").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-item.png"), full_page=True)

    page.check("input[name=verdict][value=fail]")
    assert page.locator("select[name=label] option[value=correct]").is_disabled()
    page.select_option("select[name=label]", "harmful")
    page.fill("#comment", "Insults the user.")
    page.click("#resolve")
    page.wait_for_selector(".flash:has-text('resolved')")

    with page.expect_download() as download_info:
        page.click("#export-link")
    exported = download_info.value.path().read_text().splitlines()
    records = [json.loads(line) for line in exported]
    mine = [r for r in records if r["review_item"] == seeded["flagged_item"]]
    assert len(mine) == 1 and mine[0]["label"] == "harmful" and mine[0]["verdict"] == "fail"
    assert mine[0]["messages"][0]["image"]["width"] == 1280
    assert "olivia" not in "\n".join(exported)

    page.goto(f"{url}/review/dashboard/")
    page.wait_for_selector("#dashboard[data-charts-ready='1']")
    assert int(page.locator("#kpi-requests").inner_text()) >= 4
    assert page.locator("#engine-health").is_visible()
    assert page.locator("canvas#chart-categories").count() == 1
    shot = ARTIFACTS / "review-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SHOT)
    page.context.close()
