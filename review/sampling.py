"""Random quality sampling: a share of finished answers lands in the review queue.

Hooked on the audit trail rather than on the engine: `message.answer` is recorded exactly
once per finished answer, in the transaction that stores it, whichever engine or mode
produced it. The review item is written after that transaction commits, so a sampling
problem can never undo an answer.
"""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

_random = secrets.SystemRandom()


def should_sample(rate: float) -> bool:
    return rate >= 1 or (rate > 0 and _random.random() < rate)


def on_event_recorded(sender, event, **kwargs) -> None:
    if event.action != "message.answer" or event.details.get("status") != "done":
        return
    if not should_sample(settings.REVIEW_SAMPLE_RATE):
        return
    message_id = int(event.object_id)
    transaction.on_commit(lambda: _queue_sample(message_id))


def _queue_sample(message_id: int) -> None:
    from assistant.models import Message

    from .services import review_item_create

    try:
        message = Message.objects.select_related("conversation").filter(pk=message_id).first()
        if message is not None:
            review_item_create(
                conversation=message.conversation,
                source="sample",
                reason=f"random sample ({settings.REVIEW_SAMPLE_RATE:g})",
                message=message,
            )
    except Exception:
        # The answer is stored and delivered; a missed sample is only a missed sample.
        logger.exception("could not queue message %s for review sampling", message_id)
