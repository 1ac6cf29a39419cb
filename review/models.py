from django.conf import settings
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

    class Verdict(models.TextChoices):
        PASS = "pass", "Acceptable"
        FAIL = "fail", "Not acceptable"

    class Label(models.TextChoices):
        CORRECT = "correct", "Correct"
        FALSE_POSITIVE = "false_positive", "False positive (flag was wrong)"
        WRONG_ANSWER = "wrong_answer", "Wrong answer"
        INCOMPLETE = "incomplete", "Incomplete or unhelpful"
        WRONG_GROUNDING = "wrong_grounding", "Boxes point at the wrong place"
        OVER_REFUSAL = "over_refusal", "Refused a fair question"
        HARMFUL = "harmful", "Harmful content"
        PII_LEAK = "pii_leak", "PII leak"
        OTHER = "other", "Other"

    # A label implies which way the verdict goes ("other" goes either way).
    PASS_LABELS = frozenset({Label.CORRECT, Label.FALSE_POSITIVE, Label.OTHER})
    FAIL_LABELS = frozenset(set(Label) - {Label.CORRECT, Label.FALSE_POSITIVE})

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
    verdict = models.CharField(max_length=10, choices=Verdict.choices, blank=True)
    label = models.CharField(max_length=20, choices=Label.choices, blank=True)
    # The reviewer's note, PII-redacted on the way in (it goes into exports).
    comment = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]
        permissions = [
            ("review_conversation", "Can open conversations in the review queue and resolve them"),
            ("export_reviewitem", "Can export labelled review items"),
            ("view_dashboard", "Can view the operations dashboard"),
        ]

    def __str__(self):
        return f"review {self.pk} ({self.source}, {self.status})"


class AnswerFeedback(models.Model):
    """One person's thumbs and report on one answer (they can change their mind)."""

    class Rating(models.IntegerChoices):
        DOWN = -1, "Thumbs down"
        UP = 1, "Thumbs up"

    class ReportReason(models.TextChoices):
        WRONG = "wrong", "The answer is wrong"
        HARMFUL = "harmful", "Harmful or offensive"
        PRIVATE = "private", "It shows personal data"
        OTHER = "other", "Something else"

    message = models.ForeignKey(
        "assistant.Message", on_delete=models.CASCADE, related_name="feedback"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="answer_feedback"
    )
    rating = models.SmallIntegerField(choices=Rating.choices, null=True, blank=True)
    report_reason = models.CharField(max_length=10, choices=ReportReason.choices, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_answer")
        ]

    def __str__(self):
        return f"feedback on message {self.message_id}"
