import uuid

from django.conf import settings
from django.db import models


class Upload(models.Model):
    """A sanitised screenshot. Files live under MEDIA_ROOT with random names and are
    served only to their owner through `upload_image`.

    `original` is the re-encoded full-size image (metadata stripped); `model_copy` is the
    downscaled one the engine sees.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    original = models.CharField(max_length=200)  # path relative to MEDIA_ROOT
    model_copy = models.CharField(max_length=200)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    # Safety (assistant/safety/pipeline.py): `original` has PII boxed out; `model_copy`
    # keeps the unredacted pixels only while `model_copy_unredacted` is true (until the
    # answer is final, unless KEEP_UNREDACTED_IMAGES). `ocr_text` is the screenshot's text
    # with PII replaced by placeholders, for input moderation; `pii_counts` counts only.
    model_copy_unredacted = models.BooleanField(default=False)
    ocr_text = models.TextField(blank=True)
    pii_counts = models.JSONField(default=dict, blank=True)
    # Whether `original` went through image PII redaction when it was stored (the setting
    # may change later); None for uploads stored before this was recorded.
    original_redacted = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"upload {self.pk} ({self.width}x{self.height})"


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        return self.title or f"conversation {self.pk}"

    @property
    def group_name(self) -> str:
        # Channel-layer group that receives this conversation's stream events.
        return f"conversation.{self.pk}"


UNFINISHED_ANSWER_CONSTRAINT = "one_unfinished_answer_per_conversation"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        DONE = "done"
        FAILED = "failed"
        ABORTED = "aborted"

    # An answer still being written (the engine has it or will). The partial unique index
    # in Meta spells the same two values out: Meta cannot see this class's names.
    UNFINISHED_STATUSES = (Status.PENDING, Status.STREAMING)

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField(blank=True)
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.SET_NULL)
    # An assistant message answers one user message.
    reply_to = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="reply"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    error = models.CharField(max_length=300, blank=True)
    engine = models.CharField(max_length=100, blank=True)
    # Which model wrote the answer (MODEL_ID for the GPU engine; the lite engine's parts):
    # reviewers and exports need it, and an engine name alone does not say.
    model = models.CharField(max_length=200, blank=True)
    sampling = models.JSONField(default=dict, blank=True)
    boxes = models.JSONField(default=list, blank=True)
    # The moderation verdict when it was not "allow": {"action", "categories", "stage"}.
    moderation = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The runner reads an answer with the turns before it (conversation, id <= the
            # answer's, newest first); without it PostgreSQL intersects the whole primary
            # key range, which grows with the table.
            models.Index(fields=["conversation", "id"], name="message_conversation_id_idx"),
        ]
        constraints = [
            # One answer at a time per conversation (two tabs asking at once): the second
            # insert fails, and assistant.services reports the conversation as busy.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(role="assistant", status__in=["pending", "streaming"]),
                name=UNFINISHED_ANSWER_CONSTRAINT,
            )
        ]

    def __str__(self):
        return f"{self.role} message {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED, self.Status.ABORTED}
