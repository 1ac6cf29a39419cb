"""Putting conversations in front of reviewers, their verdicts, and users' feedback.

Every write records its audit event in the same transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from assistant.errors import ServiceError
from assistant.models import Message
from assistant.safety.pii import redact_text
from audit.services import audit_record

from .models import AnswerFeedback, ReviewItem

MAX_COMMENT_CHARS = 2000


@transaction.atomic
def review_item_create(
    *, conversation, source: str, reason: str = "", message=None, acting_user=None
) -> ReviewItem:
    """Queue a conversation for review; one open item per conversation and source."""
    item, created = ReviewItem.objects.get_or_create(
        conversation=conversation,
        source=source,
        status=ReviewItem.Status.OPEN,
        defaults={"reason": reason[:200], "message": message},
    )
    if created:
        audit_record(
            actor=acting_user,
            action="review.queue",
            obj=item,
            details={
                "conversation": conversation.pk,
                "message": message.pk if message is not None else None,
                "source": source,
                "reason": reason[:100],
            },
        )
    return item


def review_item_resolve(
    *, item: ReviewItem, acting_user, verdict: str, label: str, comment: str = ""
) -> ReviewItem:
    if verdict not in ReviewItem.Verdict.values:
        raise ServiceError("Choose a verdict.", code="invalid_verdict")
    if label not in ReviewItem.Label.values:
        raise ServiceError("Choose a label.", code="invalid_label")
    allowed = (
        ReviewItem.PASS_LABELS if verdict == ReviewItem.Verdict.PASS else ReviewItem.FAIL_LABELS
    )
    if label not in allowed:
        raise ServiceError(
            f"The label “{ReviewItem.Label(label).label}” does not go with the verdict "
            f"“{ReviewItem.Verdict(verdict).label}”.",
            code="label_mismatch",
        )
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise ServiceError(
            f"The comment is too long (at most {MAX_COMMENT_CHARS} characters).",
            code="comment_too_long",
        )
    # Comments travel into exports for evaluation: no personal data in them either.
    redacted = redact_text(comment)
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().get(pk=item.pk)
        if item.status != ReviewItem.Status.OPEN:
            raise ServiceError(
                "Another reviewer resolved this item already.", code="already_resolved", status=409
            )
        item.status = ReviewItem.Status.RESOLVED
        item.verdict = verdict
        item.label = label
        item.comment = redacted.text
        item.resolved_by = acting_user
        item.resolved_at = timezone.now()
        item.save()
        audit_record(
            actor=acting_user,
            action="review.resolve",
            obj=item,
            details={
                "conversation": item.conversation_id,
                "verdict": verdict,
                "label": label,
                "comment_chars": len(redacted.text),
                "comment_redactions": redacted.counts,
            },
        )
    return item


@transaction.atomic
def review_conversation_read(*, item: ReviewItem, acting_user) -> None:
    """Record that a reviewer opened a conversation (reads of user content are audited)."""
    audit_record(
        actor=acting_user,
        action="conversation.read",
        obj=item.conversation,
        details={"via": "review", "review_item": item.pk},
    )


@transaction.atomic
def review_upload_read(*, item: ReviewItem, upload, acting_user) -> None:
    audit_record(
        actor=acting_user,
        action="upload.read",
        obj=upload,
        details={"via": "review", "review_item": item.pk, "conversation": item.conversation_id},
    )


@transaction.atomic
def review_export_record(*, acting_user, conversation_ids: list[int], filters: dict) -> None:
    """An export reads every conversation in it: the record says which (ids only)."""
    audit_record(
        actor=acting_user,
        action="review.export",
        obj=("reviewitem", "*"),
        details={"count": len(conversation_ids), "conversations": conversation_ids, **filters},
    )


# --- feedback on answers -------------------------------------------------------------------


def _answer_check(message: Message) -> None:
    if message.role != Message.Role.ASSISTANT:
        raise ServiceError("Only answers can be rated.", code="not_an_answer")
    if message.status not in (Message.Status.DONE, Message.Status.ABORTED):
        raise ServiceError("You can rate an answer once it is finished.", code="answer_not_final")


def feedback_rate(*, message: Message, acting_user, rating: int | None) -> AnswerFeedback:
    """Thumbs up (1), down (-1), or take the thumb back (None)."""
    _answer_check(message)
    if rating not in (None, *AnswerFeedback.Rating.values):
        raise ServiceError("Rating must be up, down or none.", code="invalid_rating")
    with transaction.atomic():
        feedback, _ = AnswerFeedback.objects.select_for_update().get_or_create(
            message=message, user=acting_user
        )
        feedback.rating = rating
        feedback.save(update_fields=["rating", "updated_at"])
        audit_record(
            actor=acting_user,
            action="feedback.rate",
            obj=message,
            details={"conversation": message.conversation_id, "rating": rating},
        )
    return feedback


def feedback_report(*, message: Message, acting_user, reason: str) -> AnswerFeedback:
    """Report an answer: it goes into the review queue with the reason chosen."""
    _answer_check(message)
    if reason not in AnswerFeedback.ReportReason.values:
        raise ServiceError("Choose why you are reporting this answer.", code="invalid_reason")
    with transaction.atomic():
        feedback, _ = AnswerFeedback.objects.select_for_update().get_or_create(
            message=message, user=acting_user
        )
        if feedback.reported_at is not None:
            return feedback  # reported already: the first report stands
        feedback.report_reason = reason
        feedback.reported_at = timezone.now()
        feedback.save(update_fields=["report_reason", "reported_at", "updated_at"])
        audit_record(
            actor=acting_user,
            action="feedback.report",
            obj=message,
            details={"conversation": message.conversation_id, "reason": reason},
        )
        review_item_create(
            conversation=message.conversation,
            source=ReviewItem.Source.REPORT,
            reason=f"user report: {reason}",
            message=message,
            acting_user=acting_user,
        )
    return feedback
