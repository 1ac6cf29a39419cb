"""Maintenance without Celery beat: the embedded mode runs the retention purge and the
safety sweep itself, and beat sends both to the `ops` queue that the ops worker takes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from assistant import services
from assistant.models import Conversation, Message
from ops import periodic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_schedule():
    periodic._next_run.clear()
    yield
    periodic._next_run.clear()


def old_conversation(owner, days: int) -> Conversation:
    conversation = services.conversation_create(owner=owner)
    Message.objects.create(conversation=conversation, role="user", text="hello")
    then = timezone.now() - dt.timedelta(days=days)
    Message.objects.filter(conversation=conversation).update(created_at=then)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=then, updated_at=then)
    return conversation


def test_embedded_mode_purges_on_its_own_interval(owner, settings):
    settings.INFERENCE_MODE = "embedded"
    settings.RETENTION_MESSAGE_DAYS = 90
    settings.RETENTION_PURGE_INTERVAL = 3600
    expired = old_conversation(owner, 100)
    kept = old_conversation(owner, 10)

    assert periodic.run_due(now=1000.0) == ["retention-purge", "safety-sweep"]
    assert not Conversation.objects.filter(pk=expired.pk).exists()
    assert Conversation.objects.filter(pk=kept.pk).exists()
    # Not again before its interval has passed.
    again = old_conversation(owner, 100)
    assert "retention-purge" not in periodic.run_due(now=1000.0 + 3599)
    assert Conversation.objects.filter(pk=again.pk).exists()
    assert "retention-purge" in periodic.run_due(now=1000.0 + 3601)
    assert not Conversation.objects.filter(pk=again.pk).exists()


def test_with_celery_beat_does_it_on_the_ops_queue(settings):
    settings.INFERENCE_MODE = "celery"
    assert periodic.run_due(now=1000.0) == []
    from django.conf import settings as live

    for name in ("retention-purge", "safety-sweep", "answers-sweep"):
        assert live.CELERY_BEAT_SCHEDULE[name]["options"]["queue"] == "ops"
    from glimpse.celery import app

    app.loader.import_default_modules()
    assert "policy.safety_sweep" in app.tasks and "audit.retention_purge" in app.tasks
