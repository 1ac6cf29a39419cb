from django.db import models


class ReviewItem(models.Model):
    """A conversation waiting for (or done with) a reviewer's verdict."""

    class Source(models.TextChoices):
        MODERATION = "moderation"  # flagged by input or output moderation
        REPORT = "report"  # a user reported an answer
        SAMPLE = "sample"  # picked at random for quality review

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    conversation = models.ForeignKey(
        "assistant.Conversation", on_delete=models.CASCADE, related_name="review_items"
    )
    message = models.ForeignKey(
        "assistant.Message", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    # Why it was queued: a moderation category or a short reason; never user content.
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self):
        return f"review {self.pk} ({self.source}, {self.status})"
