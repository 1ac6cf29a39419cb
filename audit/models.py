"""The audit trail: an append-only, hash-chained log of who did what to which object.

Each event carries `seq` (its place in the chain), `prev_hash` and `hash`, where

    hash = sha256(prev_hash + canonical JSON of the chained fields)

The chained fields are everything except the *payload* (`details` and `ip`), which enters
the hash through `payload_digest`. Retention can therefore drop the payload of old events
(keeping the digest) without breaking the chain, while any edit of a chained field, of a
payload still present, or the removal of a row is caught by `verify_audit_chain`.

Rows never change through the application: `save` refuses existing rows, `delete` and the
queryset's bulk update/delete raise (also through `_base_manager`, which related lookups
and Django internals use), and a database trigger (PostgreSQL and SQLite, migrations
0004 and 0005) refuses UPDATE and DELETE unless the retention purge opened its
controlled path (audit/retention.py).

The chain's two bookkeeping tables are guarded the same way, as far as the chain lets
them be: the head row is inserted once and then only advanced by audit_record, never
deleted; checkpoints are only ever inserted, by the retention purge.
"""

from __future__ import annotations

from django.db import models


class AuditImmutableError(Exception):
    """Raised by any attempt to change or delete audit events through the ORM."""


class _AppendOnlyQuerySet(models.QuerySet):
    """Refuses every bulk change; what a model may insert is up to its subclass."""

    _what = "audit rows"

    def _refuse(self, operation: str):
        raise AuditImmutableError(f"{self._what}: append-only, {operation} refused")

    def update(self, **kwargs):
        self._refuse("update")

    def delete(self):
        self._refuse("delete")

    def bulk_update(self, objs, fields, batch_size=None):
        self._refuse("bulk_update")

    def update_or_create(self, *args, **kwargs):
        self._refuse("update_or_create")

    def _raw_delete(self, using):
        # The collector's fast path (cascades) deletes through here, not through delete().
        self._refuse("delete")


class AuditEventQuerySet(_AppendOnlyQuerySet):
    _what = "audit events"

    def bulk_create(self, objs, *args, **kwargs):
        # Rows outside audit_record would have no place in the hash chain.
        raise AuditImmutableError("audit events are written by audit_record only")


class AuditChainHeadQuerySet(_AppendOnlyQuerySet):
    _what = "the audit chain head"

    def bulk_create(self, objs, *args, **kwargs):
        # audit_record creates the one row (ON CONFLICT DO NOTHING) the first time.
        objs = list(objs)
        if not all(getattr(obj, "_chained", False) for obj in objs):
            raise AuditImmutableError("the audit chain head is written by audit_record only")
        return super().bulk_create(objs, *args, **kwargs)


class AuditCheckpointQuerySet(_AppendOnlyQuerySet):
    _what = "audit checkpoints"

    def bulk_create(self, objs, *args, **kwargs):
        raise AuditImmutableError("audit checkpoints are written by the retention purge only")


class AuditEvent(models.Model):
    """Who did what to which object, written in the same transaction as the change.

    `actor_id` is the numeric id of the acting account (null for the system), deliberately
    not a foreign key: when an account is erased its events stay unchanged, and the id
    is then a pseudonym that no table resolves any more. Details hold identifiers and
    counts only, never message text or image content (enforced in audit_record).
    """

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    # Payload: dropped by retention after RETENTION_MESSAGE_DAYS (then reduced_at is set).
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    reduced_at = models.DateTimeField(null=True, blank=True)
    payload_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        # Django's internals (related lookups, the deletion collector, refresh_from_db)
        # use the base manager; a plain one would hand out an unguarded queryset.
        base_manager_name = "objects"
        ordering = ["-seq"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"#{self.seq} {self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditImmutableError("audit events are append-only: save of an existing row")
        if not getattr(self, "_chained", False):
            raise AuditImmutableError("audit events are written by audit_record only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutableError("audit events are append-only: delete refused")


class AuditChainHead(models.Model):
    """One row: the newest event's seq and hash. audit_record locks it (SELECT ... FOR
    UPDATE) so concurrent writers append one after the other; verify compares it with the
    newest row, which catches events cut off the end of the chain."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    objects = AuditChainHeadQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self):
        return f"audit chain head #{self.last_seq}"

    def save(self, *args, **kwargs):
        # Inserting it, and advancing it to the event just appended, is audit_record's job
        # (it marks the row); nobody else moves the head.
        if not getattr(self, "_chained", False):
            raise AuditImmutableError("the audit chain head is written by audit_record only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutableError("the audit chain head is never deleted")


class AuditCheckpoint(models.Model):
    """Left behind by each purge of old events: the last purged event's seq and hash, so
    the remaining chain still starts from a known, verifiable anchor."""

    through_seq = models.BigIntegerField()
    through_hash = models.CharField(max_length=64)
    deleted = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditCheckpointQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
        ordering = ["-through_seq"]

    def __str__(self):
        return f"checkpoint through #{self.through_seq}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditImmutableError("audit checkpoints are append-only: save of an existing row")
        if not getattr(self, "_chained", False):
            raise AuditImmutableError("audit checkpoints are written by the retention purge only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutableError("audit checkpoints are append-only: delete refused")
