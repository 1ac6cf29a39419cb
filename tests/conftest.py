"""Shared fixtures: personas, logged-in clients, a private media folder per test."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from . import screens

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def no_random_review_samples(settings):
    # Reviewers sample 1 % of answers at random by default; a test that counts review
    # items would then fail about once in a hundred runs. Sampling tests set the rate.
    settings.REVIEW_SAMPLE_RATE = 0.0


@pytest.fixture
def make_user(db):
    def make(username: str, **extra):
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olivia")


@pytest.fixture
def outsider(make_user):
    return make_user("oscar")


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_client(outsider):
    client = Client()
    client.force_login(outsider)
    return client


@pytest.fixture
def orders_png() -> bytes:
    return screens.png_bytes()
