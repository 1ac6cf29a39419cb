"""Personas for the review pages: a reviewer (staff, in the "Reviewers" group), a staff
member who is not a reviewer, and an administrator; plus a flagged conversation."""

from __future__ import annotations

import pytest
from django.test import Client

from .seed import answered_conversation, flag_answer, make_reviewer


@pytest.fixture(autouse=True)
def no_screenshot_ocr(settings):
    # OCR-based redaction of screenshots is the safety pipeline's (tested there) and costs
    # seconds per upload on these machines; the browser test runs it for real.
    settings.PII_REDACT_IMAGES = False


@pytest.fixture
def reviewer(db):
    return make_reviewer("rita")


@pytest.fixture
def reviewer_client(reviewer):
    client = Client()
    client.force_login(reviewer)
    return client


@pytest.fixture
def staff(make_user):
    # Staff can open the admin, but is not in the Reviewers group.
    return make_user("stan", is_staff=True)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def admin_user(make_user):
    return make_user("ada", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def flagged(owner, orders_png):
    """(item, conversation, question, answer): a moderation-flagged answer about a
    screenshot, with grounding boxes."""
    conversation, question, answer = answered_conversation(owner=owner, png=orders_png)
    item = flag_answer(answer, categories=["harassment"])
    return item, conversation, question, answer
