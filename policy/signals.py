"""Operators' edits take effect at once in this process (others re-read within seconds)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ModerationTerm


@receiver([post_save, post_delete], sender=ModerationTerm)
def moderation_terms_changed(**kwargs):
    from assistant.safety.moderation import terms_changed

    terms_changed()
