"""Account services: every write goes through here, with its audit record."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record

from .keys import generate_key, hash_key, key_matches, split_prefix
from .models import ApiKey

User = get_user_model()


@transaction.atomic
def user_create(*, username: str, password: str, email: str = "") -> User:
    user = User.objects.create_user(username=username, password=password, email=email)
    audit_record(actor=user, action="user.create", obj=user)
    return user


@transaction.atomic
def api_key_create(*, user, name: str = "", scopes: list[str] | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw key, which is never retrievable again."""
    raw_key, prefix = generate_key()
    api_key = ApiKey.objects.create(
        user=user, name=name[:100], prefix=prefix, key_hash=hash_key(raw_key), scopes=scopes or []
    )
    audit_record(actor=user, action="api_key.create", obj=api_key, details={"prefix": prefix})
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, acting_user) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            actor=acting_user,
            action="api_key.revoke",
            obj=api_key,
            details={"prefix": api_key.prefix},
        )
    return api_key


LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key for this raw value, or None. Records the last use."""
    prefix = split_prefix(raw_key)
    if prefix is None:
        return None
    api_key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if api_key is None or not api_key.is_active or not api_key.user.is_active:
        return None
    if not key_matches(raw_key, api_key.key_hash):
        return None
    now = timezone.now()
    # "Last used" to the minute is what the keys page shows; writing it on every call
    # would add a row update to each API request.
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
