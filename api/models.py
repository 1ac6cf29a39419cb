"""What the API adds to the data model: a ledger of API answers (what daily quotas are
counted from), the mark on conversations the API created, and short-lived rate counters
for deployments without Redis."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Endpoint(models.TextChoices):
    CHAT = "chat"
    COMPLETIONS = "chat.completions"


class ApiConversation(models.Model):
    """Marks a conversation as created through the API (and by which key)."""

    conversation = models.OneToOneField(
        "assistant.Conversation", on_delete=models.CASCADE, related_name="api_origin"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.CharField(max_length=20, choices=Endpoint.choices)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"api conversation {self.conversation_id}"


class ApiExchange(models.Model):
    """One answer asked for through the API.

    Rows outlive the answer (the link is cleared when a conversation is deleted) and hold
    the answer's token counts once it is final ("settled"), so deleting conversations
    cannot reset a daily quota.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_exchanges"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exchanges",
    )
    answer = models.OneToOneField(
        "assistant.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="api_exchange",
    )
    endpoint = models.CharField(max_length=20, choices=Endpoint.choices)
    created_at = models.DateTimeField(default=timezone.now)
    settled = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["api_key", "created_at"]),
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["user", "settled"]),
        ]

    def __str__(self):
        return f"api {self.endpoint} exchange {self.pk}"


class RateWindow(models.Model):
    """A fixed-window request counter, used only when REDIS_URL is not set."""

    key = models.CharField(max_length=120, unique=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.key}={self.count}"
