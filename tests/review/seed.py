"""Data for the review tests, written through the services where they exist.

Used in-process by pytest and, for the browser tests, inside the server's own database
through `manage.py shell -c "from tests.review.seed import seed_demo; seed_demo()"`.
An answer is produced the way the engine produces one (message_generation_start, then
message_generation_finish), without loading a model: the review side only needs what
the runner stores. Moderation flags use the contract the safety pipeline uses
(review_item_create(source="moderation") plus a moderation.flag audit event).
"""

from __future__ import annotations

import datetime
import random

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.services import api_key_create
from assistant import services as assistant_services
from assistant.models import Message
from assistant.safety.pii import redact_text
from audit.services import audit_record
from review import services as review_services
from review.models import AnswerFeedback, ReviewItem
from review.permissions import reviewers_group_ensure

PASSWORD = "correct horse battery staple"
BOXES = [
    {"x1": 620, "y1": 280, "x2": 780, "y2": 320, "label": "Pending"},
    {"x1": 50, "y1": 280, "x2": 160, "y2": 320, "label": "10232"},
]


def make_reviewer(username: str = "rita", *, password: str = PASSWORD):
    user = get_user_model().objects.create_user(
        username=username, password=password, email=f"{username}@example.com", is_staff=True
    )
    user.groups.add(reviewers_group_ensure())
    return user


def answered_conversation(
    *,
    owner,
    question: str = "Which order is still pending?",
    answer: str = "Order 10232 (Bob Li, $58.40) is still pending.",
    png: bytes | None = None,
    boxes: list[dict] | None = None,
    engine: str = "lite:smollm2-135m",
    latency_ms: int = 1200,
    status: str = "done",
):
    """A conversation with one question (and screenshot) and its finished answer."""
    upload = assistant_services.upload_create(owner=owner, data=png) if png else None
    conversation = assistant_services.conversation_create(owner=owner)
    with transaction.atomic():
        text = redact_text(question).text  # questions are stored redacted
        asked = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, text=text, upload=upload
        )
        pending = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            reply_to=asked,
            status=Message.Status.PENDING,
        )
        conversation.title = text[:80]
        conversation.save(update_fields=["title", "updated_at"])
    assistant_services.message_generation_start(message_id=pending.pk, engine=engine)
    if status == "failed":
        result = assistant_services.message_generation_fail(
            message_id=pending.pk, error="The engine ran out of memory.", code="engine_error"
        )
    else:
        result = assistant_services.message_generation_finish(
            message_id=pending.pk,
            text=answer,
            finish_reason="stop",
            engine=engine,
            prompt_tokens=1040,
            completion_tokens=len(answer.split()),
            boxes=BOXES if boxes is None else boxes,
        )
    # Latency as the runner would have measured it (and a short wait in the queue).
    started = result.finished_at - datetime.timedelta(milliseconds=latency_ms)
    Message.objects.filter(pk=result.pk).update(started_at=started)
    asked_at = started - datetime.timedelta(milliseconds=40)
    Message.objects.filter(pk__in=[asked.pk, result.pk]).update(created_at=asked_at)
    result.refresh_from_db()
    return conversation, asked, result


def flag_answer(answer: Message, *, categories=("harassment",)) -> ReviewItem:
    """What the safety pipeline does for a flagged answer."""
    record = {"action": "flag", "categories": list(categories), "checkers": ["terms"]}
    with transaction.atomic():
        Message.objects.filter(pk=answer.pk).update(moderation={**record, "stage": "output"})
        item = review_services.review_item_create(
            conversation=answer.conversation,
            source="moderation",
            reason="output: " + ",".join(categories),
            message=answer,
        )
        audit_record(
            actor=None, action="moderation.flag", obj=answer, details={**record, "stage": "output"}
        )
    return item


def _backdate(model, pk, when, *fields):
    model.objects.filter(pk=pk).update(**{name: when for name in fields})


def seed_demo(*, days: int = 14, seed: int = 6) -> dict:
    """A reviewer, a few users and two weeks of traffic for the dashboard and the
    reviewer flow. Returns what the browser test needs."""
    from tests import screens

    rng = random.Random(seed)
    User = get_user_model()
    reviewer = make_reviewer("rita")
    owner = User.objects.create_user(
        username="olivia", password=PASSWORD, email="olivia@example.com"
    )
    others = [User.objects.create_user(username=f"user{i}", password=PASSWORD) for i in range(1, 6)]
    api_key_create(user=owner, name="partner")
    png = screens.png_bytes()

    # The item the reviewer works on: a flagged answer with a screenshot and boxes.
    conversation, question, flagged = answered_conversation(owner=owner, png=png, latency_ms=1850)
    flagged_item = flag_answer(flagged, categories=["harassment"])
    # One the owner can report from the chat page.
    _, _, reportable = answered_conversation(
        owner=owner,
        question="What is the total of order 10233?",
        answer="The total of order 10233 is $15.99.",
        boxes=[],
        latency_ms=900,
    )

    now = timezone.now()
    categories = ["harassment", "self_harm", "violence", "sexual", "hate", "illicit"]
    for day in range(days):
        when_day = now - datetime.timedelta(days=day)
        for _ in range(rng.randint(3, 9) if day else 4):
            who = rng.choice(others)
            failed = rng.random() < 0.12
            _, asked, answer = answered_conversation(
                owner=who,
                question=rng.choice(
                    ["What does this error mean?", "Which button saves?", "Summarise this table."]
                ),
                answer="It means the connection timed out.",
                boxes=[],
                latency_ms=int(rng.lognormvariate(7.0, 0.45)),
                status="failed" if failed else "done",
            )
            when = when_day - datetime.timedelta(minutes=rng.randint(0, 600))
            _backdate(Message, asked.pk, when, "created_at")
            _backdate(Message, answer.pk, when, "created_at")
            if answer.started_at:
                latency = answer.finished_at - answer.started_at
                started = when + datetime.timedelta(milliseconds=40)
                Message.objects.filter(pk=answer.pk).update(
                    started_at=started, finished_at=started + latency
                )
            if failed:
                continue
            roll = rng.random()
            if roll < 0.15:
                item = flag_answer(answer, categories=rng.sample(categories, rng.randint(1, 2)))
                _backdate(ReviewItem, item.pk, when, "created_at")
            elif roll < 0.45:
                feedback = review_services.feedback_rate(
                    message=answer, acting_user=who, rating=1 if rng.random() < 0.75 else -1
                )
                _backdate(AnswerFeedback, feedback.pk, when, "created_at", "updated_at")
            elif roll < 0.52:
                feedback = review_services.feedback_report(
                    message=answer, acting_user=who, reason=rng.choice(["wrong", "harmful"])
                )
                _backdate(AnswerFeedback, feedback.pk, when, "created_at", "updated_at")
                item = ReviewItem.objects.get(message=answer, source="report")
                _backdate(ReviewItem, item.pk, when, "created_at")
    return {
        "reviewer": reviewer.username,
        "owner": owner.username,
        "flagged_item": flagged_item.pk,
        "flagged_conversation": conversation.pk,
        "reportable_conversation": reportable.conversation_id,
        "reportable_message": reportable.pk,
    }
