"""Reads of the operators' rules, for assistant.safety (which keeps no Django imports)."""

from __future__ import annotations

from django.db.models import Q

from .models import ImageUrlRule, ModerationTerm


def image_url_domains(*, user=None, api_key=None) -> list[str]:
    """Allowed domains from the rules that apply: deployment-wide, this API key's, and
    those of the user's groups."""
    scopes = Q(scope=ImageUrlRule.Scope.DEPLOYMENT)
    if api_key is not None and getattr(api_key, "pk", None):
        scopes |= Q(scope=ImageUrlRule.Scope.API_KEY, api_key_id=api_key.pk)
    if user is not None and getattr(user, "pk", None):
        scopes |= Q(scope=ImageUrlRule.Scope.GROUP, group__in=user.groups.all())
    return list(ImageUrlRule.objects.filter(scopes, enabled=True).values_list("domain", flat=True))


def moderation_term_rows() -> list[tuple[str, str, str]]:
    """(term, category, action) of every enabled operator term."""
    return list(
        ModerationTerm.objects.filter(enabled=True).values_list("term", "category", "action")
    )
