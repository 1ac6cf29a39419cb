"""Conversations, messages and uploads through the API: paginated, filtered by date,
deletable, and only ever the key owner's."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from assistant import services
from assistant.models import Conversation, Message, Upload
from audit.models import AuditEvent

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def upload_via_api(api, png: bytes):
    return api.post("/v1/uploads", {"image": SimpleUploadedFile("shot.png", png, "image/png")})


def test_upload_then_read_list_download_and_delete(
    api, orders_png, media_root, django_capture_on_commit_callbacks
):
    response = upload_via_api(api, orders_png)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["image_url"] == f"glimpse://uploads/{body['id']}"
    assert (body["width"], body["height"], body["content_type"]) == (1280, 800, "image/png")
    assert api.get(f"/v1/uploads/{body['id']}").json() == body
    assert [u["id"] for u in api.get("/v1/uploads").json()["results"]] == [body["id"]]
    content = api.get(f"/v1/uploads/{body['id']}/content")
    assert content.status_code == 200 and content["Content-Type"] == "image/png"
    assert b"".join(content.streaming_content).startswith(b"\x89PNG")

    upload = Upload.objects.get(pk=body["id"])
    files = [media_root / upload.original, media_root / upload.model_copy]
    with django_capture_on_commit_callbacks(execute=True):  # files go once the row is gone
        assert api.delete(f"/v1/uploads/{body['id']}").status_code == 204
    assert not Upload.objects.exists()
    assert not any(f.exists() for f in files)
    assert AuditEvent.objects.filter(action="upload.delete").count() == 1
    assert_error(api.get(f"/v1/uploads/{body['id']}"), 404, "not_found")


def test_bad_uploads_are_clear_errors(api, settings):
    assert_error(api.post("/v1/uploads", {}), 400, "no_file")
    response = api.post(
        "/v1/uploads", {"image": SimpleUploadedFile("x.png", b"not an image", "image/png")}
    )
    assert_error(response, 400)
    settings.UPLOAD_MAX_BYTES = 1000
    response = api.post(
        "/v1/uploads", {"image": SimpleUploadedFile("big.png", b"\x89PNG" + b"0" * 5000)}
    )
    assert_error(response, 413, "too_large")
    assert not Upload.objects.exists()


def test_other_users_objects_are_404(owner, api, outsider_api, orders_png):
    upload_id = upload_via_api(api, orders_png).json()["id"]
    conversation = services.conversation_create(owner=owner)
    for path in (
        f"/v1/uploads/{upload_id}",
        f"/v1/uploads/{upload_id}/content",
        f"/v1/conversations/{conversation.pk}",
        f"/v1/conversations/{conversation.pk}/messages",
    ):
        assert_error(outsider_api.get(path), 404)
    assert_error(outsider_api.delete(f"/v1/uploads/{upload_id}"), 404)
    assert_error(outsider_api.delete(f"/v1/conversations/{conversation.pk}"), 404)
    assert outsider_api.get("/v1/conversations").json()["results"] == []
    assert outsider_api.get("/v1/uploads").json()["results"] == []
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    assert Upload.objects.filter(pk=upload_id).exists()


def test_conversation_list_paginates_newest_first_and_filters_by_date(owner, api):
    conversations = [services.conversation_create(owner=owner, title=f"c{i}") for i in range(5)]
    # Spread them over five days.
    now = timezone.now()
    for age, conversation in enumerate(reversed(conversations)):
        Conversation.objects.filter(pk=conversation.pk).update(
            created_at=now - dt.timedelta(days=age)
        )
    page = api.get("/v1/conversations?limit=2").json()
    assert [c["title"] for c in page["results"]] == ["c4", "c3"]
    assert page["results"][0]["source"] == "web"
    page2 = api.get(page["next"]).json()
    assert [c["title"] for c in page2["results"]] == ["c2", "c1"]
    page3 = api.get(page2["next"]).json()
    assert [c["title"] for c in page3["results"]] == ["c0"] and page3["next"] is None

    since = (now - dt.timedelta(days=1, hours=12)).isoformat()
    titles = [
        c["title"] for c in api.get("/v1/conversations", {"created_after": since}).json()["results"]
    ]
    assert titles == ["c4", "c3"]
    before = (now - dt.timedelta(days=3)).date().isoformat()  # midnight between c0 and c1
    response = api.get("/v1/conversations", {"created_before": before})
    assert [c["title"] for c in response.json()["results"]] == ["c0"]
    assert_error(api.get("/v1/conversations?created_after=yesterday"), 400, "invalid_filter")
    assert_error(api.get("/v1/conversations?cursor=garbage"), 404)


def test_messages_read_and_delete_one_exchange(owner, api, orders_png):
    conversation = services.conversation_create(owner=owner)
    upload = services.upload_create(owner=owner, data=orders_png)
    # Not a transactional test: the engine hand-off (on commit) never runs, the answer
    # stays pending.
    answer = services.message_ask(
        conversation=conversation, acting_user=owner, text="Which order?", upload=upload
    )
    listing = api.get(f"/v1/conversations/{conversation.pk}/messages").json()["results"]
    assert [(m["role"], m["status"]) for m in listing] == [
        ("user", "done"),
        ("assistant", "pending"),
    ]
    question = listing[0]
    assert question["image_id"] == str(upload.pk) and question["text"] == "Which order?"
    detail = api.get(f"/v1/conversations/{conversation.pk}/messages/{answer.pk}").json()
    assert detail["reply_to"] == question["id"] and detail["usage"]["total_tokens"] == 0

    path = f"/v1/conversations/{conversation.pk}/messages/{question['id']}"
    assert_error(api.delete(path), 409, "message_busy")
    services.message_generation_finish(
        message_id=answer.pk, text="Order 10232.", finish_reason="stop", engine="lite"
    )
    assert api.delete(path).status_code == 204
    assert not Message.objects.filter(conversation=conversation).exists()
    assert Upload.objects.filter(pk=upload.pk).exists()  # images are deleted on their own
    assert AuditEvent.objects.filter(action="message.delete").count() == 1
    # A message id from another conversation is not found under this one.
    other = services.conversation_create(owner=owner)
    assert_error(api.get(f"/v1/conversations/{other.pk}/messages/{answer.pk}"), 404)


def test_conversation_delete_removes_messages_and_its_images(
    owner, api, orders_png, media_root, django_capture_on_commit_callbacks
):
    conversation = services.conversation_create(owner=owner)
    upload = services.upload_create(owner=owner, data=orders_png)
    Message.objects.create(conversation=conversation, role="user", text="hi", upload=upload)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/v1/conversations/{conversation.pk}").status_code == 204
    assert not Conversation.objects.exists() and not Upload.objects.exists()
    assert not (media_root / upload.original).exists()
    assert_error(api.get(f"/v1/conversations/{conversation.pk}"), 404)
