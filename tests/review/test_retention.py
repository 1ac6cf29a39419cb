"""Retention purge and right to erasure: nothing left behind, the audit chain intact."""

from __future__ import annotations

import datetime
import io
import json
import os
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from assistant.models import Conversation, Message, Upload
from audit.models import AuditCheckpoint, AuditEvent
from review.models import AnswerFeedback, ReviewItem
from review.services import feedback_rate

from ..conftest import PASSWORD
from .seed import answered_conversation, flag_answer
from .test_audit import superuser_sql, verify

pytestmark = pytest.mark.django_db


def media_files(media_root) -> set[str]:
    folder = media_root / "uploads"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def purge(as_of: datetime.datetime | None = None) -> dict:
    out = io.StringIO()
    args = ["purge_expired"] + (["--as-of", as_of.isoformat()] if as_of else [])
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def backdate(conversation, days: int) -> None:
    when = timezone.now() - datetime.timedelta(days=days)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=when, updated_at=when)
    Message.objects.filter(conversation=conversation).update(created_at=when)
    Upload.objects.filter(message__conversation=conversation).update(created_at=when)


def all_text_in_database() -> str:
    """Every row of every table, as text: what an attacker with a dump would see."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            chunks.append(repr(cursor.fetchall()))
    return "\n".join(chunks)


def test_purge_removes_expired_uploads_messages_and_files(
    owner, orders_png, media_root, settings, django_capture_on_commit_callbacks
):
    settings.RETENTION_UPLOAD_DAYS = 30
    settings.RETENTION_MESSAGE_DAYS = 90
    settings.RETENTION_AUDIT_DAYS = 0  # tested below
    old_conversation, _, old_answer = answered_conversation(
        owner=owner, png=orders_png, question="Ancient question about order 4411?"
    )
    flag_answer(old_answer)
    feedback_rate(message=old_answer, acting_user=owner, rating=1)
    backdate(old_conversation, 100)
    mid_conversation, mid_question, _ = answered_conversation(owner=owner, png=orders_png)
    backdate(mid_conversation, 45)  # screenshot expired, messages not yet
    fresh_conversation, fresh_question, _ = answered_conversation(owner=owner, png=orders_png)
    # A file no row refers to (a crash between writing it and its row), two days old.
    orphan = media_root / "uploads" / "orphan.png"
    orphan.write_bytes(orders_png)
    two_days_ago = time.time() - 2 * 86400
    os.utime(orphan, (two_days_ago, two_days_ago))
    # The admin's change history names the conversation; it goes with the messages.
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(
        user=owner,
        content_type=ContentType.objects.get_for_model(Conversation),
        object_id=str(old_conversation.pk),
        object_repr=old_conversation.title,
        action_flag=CHANGE,
        action_time=timezone.now() - datetime.timedelta(days=100),
    )
    fresh_files = {
        os.path.basename(fresh_question.upload.original),
        os.path.basename(fresh_question.upload.model_copy),
    }

    # Files are deleted once the deletion of their rows commits.
    with django_capture_on_commit_callbacks(execute=True):
        report = purge()

    assert report["conversations"] == 1 and report["messages"] == 2
    assert report["uploads"] == 2 and report["files"] == 4 and report["orphan_files"] == 1
    assert report["admin_log"] == 1
    assert not Conversation.objects.filter(pk=old_conversation.pk).exists()
    assert not ReviewItem.objects.exists() and not AnswerFeedback.objects.exists()
    assert "Ancient question" not in all_text_in_database()
    # The 45-day-old conversation keeps its text, without its screenshot.
    mid_question.refresh_from_db()
    assert mid_question.upload_id is None and mid_question.text
    assert list(Upload.objects.values_list("pk", flat=True)) == [fresh_question.upload_id]
    assert media_files(media_root) == fresh_files
    # The purge is itself audited, with counts.
    assert AuditEvent.objects.filter(action="retention.conversations").get().details == {
        "deleted": 1,
        "messages": 2,
    }
    ok, output = verify()
    assert ok, output


def test_audit_details_reduced_then_old_events_purged_chain_still_verifies(owner_client, settings):
    settings.RETENTION_UPLOAD_DAYS = 0
    settings.RETENTION_MESSAGE_DAYS = 30
    settings.RETENTION_AUDIT_DAYS = 60
    owner_client.post("/accounts/keys/", {"name": "ci"})
    owner_client.post("/conversations/")
    first_events = list(AuditEvent.objects.order_by("seq"))
    assert first_events[0].ip == "127.0.0.1"

    # 40 days on: past the message period, events keep metadata only.
    report = purge(timezone.now() + datetime.timedelta(days=40))
    # (Counting the purge's own record of the empty conversation it removed.)
    assert report["audit_reduced"] >= len(first_events) and report["audit_deleted"] == 0
    reduced = AuditEvent.objects.get(pk=first_events[0].pk)
    assert reduced.details == {} and reduced.ip is None and reduced.reduced_at
    assert (reduced.action, reduced.actor_id, reduced.hash) == (
        first_events[0].action,
        first_events[0].actor_id,
        first_events[0].hash,
    )
    assert verify()[0]

    # 70 days on: the old events go; a checkpoint anchors what remains.
    owner_client.post("/conversations/")
    newest_before = AuditEvent.objects.order_by("-seq").first()
    report = purge(timezone.now() + datetime.timedelta(days=70))
    assert report["audit_deleted"] >= len(first_events)
    checkpoint = AuditCheckpoint.objects.get()
    assert not AuditEvent.objects.filter(seq__lte=checkpoint.through_seq).exists()
    assert AuditEvent.objects.filter(action="audit.purge").get().details["through_seq"] == (
        checkpoint.through_seq
    )
    assert checkpoint.through_seq >= newest_before.seq
    ok, output = verify()
    assert ok, output

    # The trigger is closed again after the purge: no stray update gets through.
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent")

    # A forged anchor (moved forward to hide deleted events) is caught.
    superuser_sql(
        "UPDATE audit_auditcheckpoint SET through_seq = through_seq + 1 WHERE id = %s",
        [checkpoint.pk],
    )
    assert not verify()[0]


def test_user_erases_account_and_nothing_is_left(
    owner, owner_client, orders_png, media_root, reviewer_client, django_capture_on_commit_callbacks
):
    owner.email = "olivia.private@example.com"
    owner.save()
    conversation, question, answer = answered_conversation(
        owner=owner, png=orders_png, question="Is order 7781 mine?"
    )
    item = flag_answer(answer)
    api_key_create(user=owner, name="partner")
    owner_client.post(
        f"/messages/{answer.pk}/feedback/",
        data='{"report": "wrong"}',
        content_type="application/json",
    )
    reviewer_client.get(f"/review/items/{item.pk}/")  # a reviewer read it
    # An administrator once edited the account in the admin (its history names it), and
    # the person is also signed in on another device.
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(
        user=get_user_model().objects.get(username="rita"),
        content_type=ContentType.objects.get_for_model(owner),
        object_id=str(owner.pk),
        object_repr=owner.username,
        action_flag=CHANGE,
    )
    other_device = Client()
    other_device.force_login(owner)
    assert media_files(media_root)
    owner_id = owner.pk

    page = owner_client.get("/accounts/delete/")
    assert page.status_code == 200
    wrong = owner_client.post("/accounts/delete/", {"password": "nope", "confirm": "on"})
    assert "That is not your password." in wrong.content.decode()
    assert get_user_model().objects.filter(pk=owner_id).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/accounts/delete/", {"password": PASSWORD, "confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"

    assert not get_user_model().objects.filter(pk=owner_id).exists()
    for model in (Conversation, Message, Upload, ApiKey, ReviewItem, AnswerFeedback):
        assert not model.objects.exists(), model
    assert media_files(media_root) == set()
    dump = all_text_in_database()
    for trace in ("olivia", "olivia.private@example.com", "Is order 7781 mine?", "Order 10232"):
        assert trace not in dump, trace
    # The audit trail keeps metadata under the account's number, and verifies.
    erase = AuditEvent.objects.get(action="user.erase")
    assert erase.actor_id == owner_id and erase.object_id == str(owner_id)
    assert erase.ip is None  # the person's address is not kept either
    assert erase.details["conversations"] == 1 and erase.details["files"] == 2
    own_events = AuditEvent.objects.filter(actor_id=owner_id).exclude(action="user.erase")
    assert own_events.exists()
    assert all(e.details == {} and e.ip is None for e in own_events)
    ok, output = verify()
    assert ok, output
    # The sessions are gone with the account, on every device.
    assert owner_client.get("/").status_code == 302
    assert other_device.get("/").status_code == 302


def test_superuser_cannot_self_erase_but_operator_command_erases(admin_client, admin_user, owner):
    response = admin_client.get("/accounts/delete/", follow=True)
    assert "erased by another administrator" in response.content.decode()
    assert get_user_model().objects.filter(pk=admin_user.pk).exists()

    out = io.StringIO()
    call_command("erase_user", owner.username, "--yes", stdout=out)
    assert json.loads(out.getvalue())["erased"] is True
    assert not get_user_model().objects.filter(pk=owner.pk).exists()
    assert AuditEvent.objects.get(action="user.erase").details["by"] == "admin"


def test_beat_runs_the_purge_task(owner, settings, django_capture_on_commit_callbacks):
    from django.conf import settings as live

    from glimpse.celery import app

    entry = live.CELERY_BEAT_SCHEDULE["retention-purge"]
    app.loader.import_default_modules()  # what a worker does at start: finds audit.tasks
    task = app.tasks[entry["task"]]
    settings.RETENTION_MESSAGE_DAYS = 90
    old, _, _ = answered_conversation(owner=owner)
    backdate(old, 100)
    with django_capture_on_commit_callbacks(execute=True):
        result = task.apply().get()
    assert result["conversations"] == 1
    assert not Conversation.objects.filter(pk=old.pk).exists()


@pytest.mark.parametrize("store", ["local", "redis"])
def test_erasure_removes_the_users_answers_from_the_answer_cache(
    store, owner, outsider, owner_client, settings, django_capture_on_commit_callbacks
):
    """A shared answer cache serves an answer to anyone asking the same question: an
    erased person's answers must leave it with them (another person's entry stays)."""
    from inference import cache as answer_cache

    settings.ANSWER_CACHE = "shared"
    if store == "redis":
        import redis

        from inference import liveness

        settings.REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        liveness._client = None  # the shared client follows REDIS_URL
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    else:
        settings.REDIS_URL = ""
        answer_cache._local_store.clear()
    sampling = {"max_new_tokens": 64, "temperature": 0.0}

    def cached(user, question, answer_id):
        key = answer_cache.key_for(
            user_id=user.pk, question=question, upload=None, sampling=sampling
        )
        answer_cache.expect(answer_id, key, owner_id=user.pk)
        assert answer_cache.remember(
            answer_id=answer_id,
            text=f"answer {answer_id}",
            engine="lite",
            boxes=[],
            prompt_tokens=1,
            completion_tokens=2,
            finish_reason="stop",
        )
        return key

    mine = cached(owner, "Which order is mine?", 1)
    theirs = cached(outsider, "Which order is theirs?", 2)
    assert answer_cache.lookup(mine).text == "answer 1"

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/accounts/delete/", {"password": PASSWORD, "confirm": "on"})
    assert answer_cache.lookup(mine) is None
    assert answer_cache.lookup(theirs).text == "answer 2"
    if store == "redis":
        from inference import liveness

        liveness._client = None
