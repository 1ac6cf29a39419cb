"""The review queue, verdicts, export and dashboard through HTTP, with personas."""

from __future__ import annotations

import json

import pytest
import redis
from django.test import Client

from audit.models import AuditEvent
from review.models import ReviewItem

from .seed import answered_conversation, flag_answer

pytestmark = pytest.mark.django_db


def reviewer_urls(item, upload_id) -> list[tuple[str, str]]:
    return [
        ("get", "/review/"),
        ("get", f"/review/items/{item.pk}/"),
        ("post", f"/review/items/{item.pk}/resolve/"),
        ("get", f"/review/items/{item.pk}/uploads/{upload_id}/image"),
        ("get", "/review/export.jsonl"),
        ("get", "/review/dashboard/"),
        ("get", "/review/dashboard.json"),
    ]


def test_nobody_but_reviewers_reaches_any_of_it(
    flagged, owner_client, outsider_client, staff_client
):
    item, _, question, _ = flagged
    urls = reviewer_urls(item, question.upload_id)
    for method, url in urls:
        response = getattr(Client(), method)(url, {"verdict": "fail", "label": "harmful"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
        # The conversation's owner, another user, and staff outside the Reviewers group.
        for client in (owner_client, outsider_client, staff_client):
            response = getattr(client, method)(url, {"verdict": "fail", "label": "harmful"})
            assert response.status_code == 403, (url, response.status_code)
    item.refresh_from_db()
    assert item.status == "open"
    assert not AuditEvent.objects.filter(action__in=["conversation.read", "upload.read"]).exists()


def test_reviewer_reads_a_flagged_conversation_and_it_is_audited(
    flagged, reviewer, reviewer_client, settings, owner, orders_png
):
    item, conversation, question, answer = flagged
    queue = reviewer_client.get("/review/")
    assert queue.status_code == 200
    assert f'href="/review/items/{item.pk}/"'.encode() in queue.content

    page = reviewer_client.get(f"/review/items/{item.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Which order is still pending?" in html and "Order 10232" in html
    assert "lite:smollm2-135m" in html and "1200 ms" in html  # engine and latency
    assert "1040 in /" in html  # tokens
    assert "output: harassment" in html and "moderation.flag" in html  # verdicts
    assert "olivia" not in html  # the owner is "user #id" to reviewers
    assert f"user #{conversation.owner_id}" in html
    boxes = page.context["boxes_data"]
    assert boxes[str(question.pk)][0]["label"] == "Pending"
    assert "not redacted" in html  # uploaded without OCR redaction (conftest)

    read = AuditEvent.objects.get(action="conversation.read")
    assert read.actor_id == reviewer.pk and read.object_id == str(conversation.pk)
    assert read.details == {"via": "review", "review_item": item.pk}
    assert read.ip == "127.0.0.1" and read.request_id

    image = reviewer_client.get(f"/review/items/{item.pk}/uploads/{question.upload_id}/image")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")
    assert AuditEvent.objects.filter(
        action="upload.read", object_id=str(question.upload_id)
    ).exists()

    # The label follows how each screenshot was stored, not today's setting: this one was
    # stored with image redaction off, and turning it on later does not relabel it.
    settings.PII_REDACT_IMAGES = True
    page = reviewer_client.get(f"/review/items/{item.pk}/").content.decode()
    assert "redacted copy (PII boxed out)" not in page
    _, _, redacted_answer = answered_conversation(owner=owner, png=orders_png)
    redacted_item = flag_answer(redacted_answer)
    page = reviewer_client.get(f"/review/items/{redacted_item.pk}/").content.decode()
    assert "redacted copy (PII boxed out)" in page


def test_screenshot_of_another_conversation_is_not_served(
    flagged, reviewer_client, outsider, orders_png
):
    item, *_ = flagged
    _, other_question, _ = answered_conversation(owner=outsider, png=orders_png)
    response = reviewer_client.get(
        f"/review/items/{item.pk}/uploads/{other_question.upload_id}/image"
    )
    assert response.status_code == 404
    assert reviewer_client.get("/review/items/99999/").status_code == 404


def test_verdict_is_validated_recorded_and_exported(flagged, reviewer, reviewer_client, owner):
    item, conversation, question, answer = flagged
    url = f"/review/items/{item.pk}/resolve/"
    # A label that contradicts the verdict is refused with a readable message.
    response = reviewer_client.post(url, {"verdict": "pass", "label": "harmful"}, follow=True)
    assert "does not go with the verdict" in response.content.decode()
    item.refresh_from_db()
    assert item.status == "open"

    response = reviewer_client.post(
        url,
        {"verdict": "fail", "label": "harmful", "comment": "Insults the user; call 13812345678"},
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.status, item.verdict, item.label) == ("resolved", "fail", "harmful")
    assert item.resolved_by == reviewer
    assert item.comment == "Insults the user; call [PHONE]"  # redacted on the way in
    event = AuditEvent.objects.get(action="review.resolve")
    assert event.details["label"] == "harmful" and "Insults" not in json.dumps(event.details)

    # A second reviewer arriving late does not overwrite the verdict.
    late = reviewer_client.post(url, {"verdict": "pass", "label": "correct"}, follow=True)
    assert "resolved this item already" in late.content.decode()

    export = reviewer_client.get("/review/export.jsonl", {"label": "harmful"})
    assert export.status_code == 200
    assert export["Content-Type"].startswith("application/x-ndjson")
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["label"] == "harmful" and record["verdict"] == "fail"
    assert record["target_message"] == answer.pk
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert record["messages"][0]["image"] == {
        "upload_id": str(question.upload_id),
        "width": 1280,
        "height": 800,
    }
    assert record["messages"][1]["boxes"][0]["label"] == "Pending"
    assert record["messages"][1]["latency_ms"] == 1200
    # Nothing that identifies the person, and no pixels.
    for secret in ("olivia", owner.email or "@", "base64", "rita"):
        assert secret not in lines[0]
    export_event = AuditEvent.objects.get(action="review.export")
    # Which conversations the export read (ids only), as for any reviewer read.
    assert export_event.details == {
        "count": 1,
        "conversations": [record["conversation"]],
        "label": "harmful",
    }
    assert reviewer_client.get("/review/export.jsonl", {"label": "correct"}).getvalue() == b""


def test_reports_and_moderation_land_in_the_queue_and_samples_follow_the_rate(
    owner, reviewer_client, settings, django_capture_on_commit_callbacks
):
    settings.REVIEW_SAMPLE_RATE = 1.0
    with django_capture_on_commit_callbacks(execute=True):
        _, _, sampled = answered_conversation(owner=owner)
    item = ReviewItem.objects.get(source="sample")
    assert item.message_id == sampled.pk and item.reason == "random sample (1)"

    settings.REVIEW_SAMPLE_RATE = 0.0
    with django_capture_on_commit_callbacks(execute=True):
        answered_conversation(owner=owner)
        answered_conversation(owner=owner, status="failed")
    assert ReviewItem.objects.filter(source="sample").count() == 1

    page = reviewer_client.get("/review/", {"source": "sample"})
    assert len(page.context["page"].object_list) == 1
    resolved = reviewer_client.get("/review/", {"status": "resolved"})
    assert len(resolved.context["page"].object_list) == 0


def test_dashboard_shows_the_figures(flagged, owner, reviewer_client, settings):
    answered_conversation(owner=owner, latency_ms=400)
    answered_conversation(owner=owner, status="failed")
    page = reviewer_client.get("/review/dashboard/")
    assert page.status_code == 200
    assert b"chart.umd.min.js" in page.content and b"dashboard.js" in page.content
    data = reviewer_client.get("/review/dashboard.json").json()
    totals = data["totals"]
    assert totals["requests_24h"] == 3 and totals["users_24h"] == 1
    assert totals["errors_24h"] == 1 and totals["open_review_items"] == 1
    assert totals["latency_p50_ms_24h"] == pytest.approx(400, abs=1)
    assert totals["latency_p99_ms_24h"] == pytest.approx(1200, abs=1)
    assert data["series"][-1]["requests"] == 3 and data["series"][-1]["flags_moderation"] == 1
    assert data["top_moderation_categories"] == [{"category": "harassment", "count": 1}]
    assert data["queue_by_source"] == {"moderation": 1}
    assert data["inference_queue_length"] is None  # embedded mode has no queue
    assert data["engine"]["mode"] == "embedded"


@pytest.mark.parametrize("in_database", [True, False], ids=["postgresql", "sampled"])
def test_dashboard_latency_per_day_counts_every_day(
    owner, reviewer_client, monkeypatch, in_database
):
    # A busy today must not crowd the days before it out of the latency chart: each day's
    # percentiles come from that day's answers (all of them in PostgreSQL; elsewhere the
    # newest LATENCY_SAMPLE_LIMIT of each day).
    from datetime import timedelta

    from django.utils import timezone

    from assistant.models import Message
    from review import metrics

    monkeypatch.setattr(metrics, "_percentiles_in_database", lambda queryset: in_database)
    monkeypatch.setattr(metrics, "LATENCY_SAMPLE_LIMIT", 4)
    two_days_ago = timezone.now() - timedelta(days=2)
    for latency in (100, 200, 300):
        _, _, answer = answered_conversation(owner=owner, latency_ms=latency)
        Message.objects.filter(pk=answer.pk).update(
            started_at=two_days_ago - timedelta(milliseconds=latency), finished_at=two_days_ago
        )
    for latency in (1000, 2000, 3000, 4000, 5000):
        answered_conversation(owner=owner, latency_ms=latency)

    data = reviewer_client.get("/review/dashboard.json").json()
    by_day = {row["day"]: row for row in data["series"]}
    earlier = by_day[timezone.localdate(two_days_ago).isoformat()]
    today = data["series"][-1]
    assert earlier["latency_p50_ms"] == pytest.approx(200, abs=1)
    assert earlier["latency_p99_ms"] == pytest.approx(300, abs=1)
    # Nearest rank over today's five (PostgreSQL) or its newest four (sampled).
    assert today["latency_p50_ms"] == pytest.approx(3000, abs=1)
    assert today["latency_p99_ms"] == pytest.approx(5000, abs=1)
    assert data["totals"]["latency_p99_ms_24h"] == pytest.approx(5000, abs=1)
    quiet = by_day[timezone.localdate(two_days_ago + timedelta(days=1)).isoformat()]
    assert quiet["latency_p50_ms"] is None


def test_dashboard_reads_inference_queue_length_from_redis(reviewer_client, settings):
    import os

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    connection = redis.Redis.from_url(url)
    connection.delete("inference")
    connection.rpush("inference", "task-1", "task-2", "task-3")
    try:
        settings.INFERENCE_MODE = "celery"
        settings.CELERY_BROKER_URL = url
        data = reviewer_client.get("/review/dashboard.json").json()
        assert data["inference_queue_length"] == 3
        # Redis that does not answer: the page still renders, without the figure.
        settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
        assert reviewer_client.get("/review/dashboard/").status_code == 200
        assert (
            reviewer_client.get("/review/dashboard.json").json()["inference_queue_length"] is None
        )
    finally:
        connection.delete("inference")
        connection.close()


def test_reviewers_group_comes_from_the_migration():
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="Reviewers")  # made by review/migrations/0003
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"review_conversation", "export_reviewitem", "view_dashboard"} <= codenames
