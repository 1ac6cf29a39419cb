"""Thumbs and reports on answers: owner only, session + CSRF, visible to reviewers."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from review.models import AnswerFeedback, ReviewItem

from .seed import answered_conversation

pytestmark = pytest.mark.django_db


def post(client, message_id, body, **headers):
    return client.post(
        f"/messages/{message_id}/feedback/",
        data=json.dumps(body) if not isinstance(body, bytes) else body,
        content_type="application/json",
        headers=headers,
    )


@pytest.fixture
def answer(owner):
    return answered_conversation(owner=owner)[2]


def test_owner_rates_changes_mind_and_reports(owner, owner_client, answer, reviewer_client):
    assert post(owner_client, answer.pk, {"rating": "up"}).json() == {
        "message_id": answer.pk,
        "rating": "up",
        "reported": False,
    }
    assert post(owner_client, answer.pk, {"rating": "down"}).json()["rating"] == "down"
    assert post(owner_client, answer.pk, {"rating": None}).json()["rating"] is None
    assert AnswerFeedback.objects.get().rating is None

    response = post(owner_client, answer.pk, {"report": "wrong"})
    assert response.status_code == 200 and response.json()["reported"] is True
    item = ReviewItem.objects.get(source="report")
    assert item.message_id == answer.pk and item.reason == "user report: wrong"
    # Reporting twice changes nothing: the first report stands.
    assert post(owner_client, answer.pk, {"report": "harmful"}).json()["reported"] is True
    assert ReviewItem.objects.filter(source="report").count() == 1

    actions = list(AuditEvent.objects.filter(actor_id=owner.pk).values_list("action", flat=True))
    assert actions.count("feedback.rate") == 3 and actions.count("feedback.report") == 1
    assert "review.queue" in actions

    listed = owner_client.get(f"/conversations/{answer.conversation_id}/feedback/").json()
    assert listed == {"feedback": [{"message_id": answer.pk, "rating": None, "reported": True}]}
    # Reviewers see it on the item page.
    page = reviewer_client.get(f"/review/items/{item.pk}/").content.decode()
    assert "reported: The answer is wrong" in page


def test_feedback_is_owner_only(answer, outsider_client):
    assert post(outsider_client, answer.pk, {"rating": "up"}).status_code == 404
    assert post(outsider_client, answer.pk, {"report": "wrong"}).status_code == 404
    listed = outsider_client.get(f"/conversations/{answer.conversation_id}/feedback/")
    assert listed.status_code == 404
    response = post(Client(), answer.pk, {"rating": "up"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    assert not AnswerFeedback.objects.exists() and not ReviewItem.objects.exists()


def test_feedback_needs_csrf(owner, answer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert post(client, answer.pk, {"rating": "up"}).status_code == 403
    client.get(f"/c/{answer.conversation_id}/")  # the chat page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert post(client, answer.pk, {"rating": "up"}, X_CSRFToken=token).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        ({}, "invalid_request"),
        ({"rating": "sideways"}, "invalid_rating"),
        ({"report": "because"}, "invalid_reason"),
        ([1, 2], "invalid_request"),
    ],
)
def test_bad_feedback_gets_a_clear_error(owner_client, answer, body, code):
    response = post(owner_client, answer.pk, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not AnswerFeedback.objects.exists()


def test_only_finished_answers_can_be_rated(owner, owner_client, answer):
    question = answer.reply_to
    assert (
        post(owner_client, question.pk, {"rating": "up"}).json()["error"]["code"] == "not_an_answer"
    )
    _, _, failed = answered_conversation(owner=owner, status="failed")
    response = post(owner_client, failed.pk, {"rating": "down"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "You can rate an answer once it is finished."
