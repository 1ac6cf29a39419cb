"""The audit trail: one call per state change, inside the change's transaction."""

from __future__ import annotations

from django.db import transaction

from .models import AuditEvent


def audit_record(*, actor, action: str, obj, details: dict | None = None) -> AuditEvent:
    # Refusing to run outside a transaction makes "change without audit" impossible to
    # write by accident: both commit or neither does.
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=str(obj.pk),
        details=details or {},
    )
