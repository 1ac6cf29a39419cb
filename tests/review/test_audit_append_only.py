"""Append-only, every way round: the ORM (including the base manager Django's internals
use), the chain's bookkeeping rows, and the database triggers on PostgreSQL and SQLite,
with the retention purge's controlled path still open to it alone."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditImmutableError
from audit.retention import _audit_maintenance, audit_events_reduce
from audit.services import audit_record

from .test_audit import some_events, verify
from .test_retention import purge

pytestmark = pytest.mark.django_db


def refused(sql: str, params=()) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def test_orm_refuses_bulk_update_update_or_create_and_queryset_changes(owner_client):
    events = some_events(owner_client)
    first = events[0]
    original_action = first.action
    first.action = "changed"
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.bulk_update([first], ["action"])
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.update_or_create(pk=first.pk, defaults={"action": "changed"})
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.update_or_create(seq=10_000, defaults={"action": "forged"})
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.filter(pk=first.pk).update(action="changed")
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.filter(seq__lte=2).delete()
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.get_or_create(seq=10_000, defaults={"hash": "f" * 64})
    # The base manager (related lookups, the deletion collector, refresh_from_db) is the
    # guarded one too, not a plain queryset.
    assert AuditEvent._base_manager.name == "objects"
    with pytest.raises(AuditImmutableError):
        AuditEvent._base_manager.filter(pk=first.pk).update(action="changed")
    with pytest.raises(AuditImmutableError):
        AuditEvent._base_manager.all().delete()
    with pytest.raises(AuditImmutableError):
        AuditEvent._base_manager.bulk_update([first], ["action"])
    assert AuditEvent.objects.count() == len(events)
    assert AuditEvent.objects.get(pk=first.pk).action == original_action
    ok, output = verify()
    assert ok, output


def test_chain_head_and_checkpoints_move_only_with_the_chain(owner_client, settings):
    some_events(owner_client)
    head = AuditChainHead.objects.get()
    newest = AuditEvent.objects.order_by("-seq").first()
    assert (head.last_seq, head.last_hash) == (newest.seq, newest.hash)

    # Nobody but audit_record moves the head, and nobody removes it.
    head.last_seq = 1
    with pytest.raises(AuditImmutableError):
        head.save()
    with pytest.raises(AuditImmutableError):
        head.delete()
    for manager in (AuditChainHead.objects, AuditChainHead._base_manager):
        with pytest.raises(AuditImmutableError):
            manager.update(last_seq=1)
        with pytest.raises(AuditImmutableError):
            manager.all().delete()
        with pytest.raises(AuditImmutableError):
            manager.update_or_create(pk=1, defaults={"last_seq": 1})
        with pytest.raises(AuditImmutableError):
            manager.bulk_create([AuditChainHead(pk=2)])
    with pytest.raises(AuditImmutableError):
        AuditChainHead.objects.bulk_update([head], ["last_seq"])

    # Checkpoints come from the purge only, and never change.
    with pytest.raises(AuditImmutableError):
        AuditCheckpoint.objects.create(through_seq=2, through_hash="a" * 64, deleted=2)
    with pytest.raises(AuditImmutableError):
        AuditCheckpoint.objects.bulk_create([AuditCheckpoint(through_seq=2, deleted=2)])
    assert not AuditCheckpoint.objects.exists()

    # What the chain itself writes still goes through: events advance the head, the purge
    # leaves a checkpoint.
    owner_client.post("/conversations/")
    assert AuditChainHead.objects.get().last_seq == newest.seq + 1
    settings.RETENTION_UPLOAD_DAYS = settings.RETENTION_MESSAGE_DAYS = 0
    settings.RETENTION_AUDIT_DAYS = 60
    report = purge(timezone.now() + datetime.timedelta(days=70))
    assert report["audit_deleted"] == newest.seq + 1
    checkpoint = AuditCheckpoint.objects.get()
    checkpoint.deleted = 0
    with pytest.raises(AuditImmutableError):
        checkpoint.save()
    with pytest.raises(AuditImmutableError):
        checkpoint.delete()
    for manager in (AuditCheckpoint.objects, AuditCheckpoint._base_manager):
        with pytest.raises(AuditImmutableError):
            manager.update(deleted=0)
        with pytest.raises(AuditImmutableError):
            manager.all().delete()
        with pytest.raises(AuditImmutableError):
            manager.update_or_create(pk=checkpoint.pk, defaults={"deleted": 0})
    ok, output = verify()
    assert ok, output


def test_database_refuses_changes_on_every_vendor_except_the_purge_path(owner_client, settings):
    events = some_events(owner_client)
    target = events[0]
    table = AuditEvent._meta.db_table
    refused(f"UPDATE {table} SET action = 'changed' WHERE id = %s", [target.pk])  # noqa: S608
    refused(f"DELETE FROM {table} WHERE id = %s", [target.pk])  # noqa: S608
    refused(f"DELETE FROM {table}")  # noqa: S608
    refused(
        f"UPDATE {table} SET details = '{{}}', ip = NULL, reduced_at = CURRENT_TIMESTAMP "  # noqa: S608
        "WHERE id = %s",
        [target.pk],
    )

    # The purge's path lets it reduce and delete, and nothing else, even while open.
    with pytest.raises(DatabaseError, match="append-only"), _audit_maintenance():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET details = '{{}}', ip = NULL, "  # noqa: S608
                "reduced_at = CURRENT_TIMESTAMP, action = 'changed' WHERE id = %s",
                [target.pk],
            )
    assert audit_events_reduce(AuditEvent.objects.filter(pk=target.pk)) == 1
    reduced = AuditEvent.objects.get(pk=target.pk)
    assert reduced.details == {} and reduced.ip is None and reduced.reduced_at
    assert reduced.action == target.action and reduced.hash == target.hash
    # ... and it is closed again afterwards, also inside the same transaction.
    refused(f"DELETE FROM {table} WHERE id = %s", [target.pk])  # noqa: S608

    settings.RETENTION_UPLOAD_DAYS = settings.RETENTION_MESSAGE_DAYS = 0
    settings.RETENTION_AUDIT_DAYS = 60
    assert purge(timezone.now() + datetime.timedelta(days=70))["audit_deleted"] == len(events)
    checkpoint = AuditCheckpoint.objects.get()
    cp_table = AuditCheckpoint._meta.db_table
    refused(f"UPDATE {cp_table} SET deleted = 0 WHERE id = %s", [checkpoint.pk])  # noqa: S608
    refused(f"DELETE FROM {cp_table} WHERE id = %s", [checkpoint.pk])  # noqa: S608
    with pytest.raises(DatabaseError, match="append-only"), _audit_maintenance():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {cp_table}")  # noqa: S608
    ok, output = verify()
    assert ok, output


@pytest.mark.django_db(transaction=True)
def test_flush_still_empties_the_audit_tables(owner_client, settings):
    # PostgreSQL flushes with TRUNCATE (no row triggers); SQLite with DELETE, which
    # audit's flush command lets through its own gate. Either way: an empty, valid chain.
    some_events(owner_client)
    settings.RETENTION_UPLOAD_DAYS = settings.RETENTION_MESSAGE_DAYS = 0
    settings.RETENTION_AUDIT_DAYS = 60
    purge(timezone.now() + datetime.timedelta(days=70))
    assert AuditCheckpoint.objects.exists()
    call_command("flush", interactive=False, inhibit_post_migrate=True, stdout=io.StringIO())
    assert not AuditEvent.objects.exists() and not AuditCheckpoint.objects.exists()
    assert not AuditChainHead.objects.exists()
    ok, output = verify()
    assert ok, output
    # The triggers are still in place after it.
    with transaction.atomic():
        event = audit_record(actor=None, action="test.after_flush", obj=("x", "1"))
    refused(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [event.pk])  # noqa: S608
