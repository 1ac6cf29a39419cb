"""Putting conversations in front of reviewers."""

from __future__ import annotations

from django.db import transaction

from audit.services import audit_record

from .models import ReviewItem


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
            details={"conversation": conversation.pk, "source": source, "reason": reason[:200]},
        )
    return item
