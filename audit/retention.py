"""Retention: what has outlived its period is deleted, files on disk included.

Run by Celery beat (audit.retention_purge) and by `manage.py purge_expired`.

- Screenshots older than RETENTION_UPLOAD_DAYS: rows and files (their questions stay,
  without the image). Files in the upload folder that no row refers to (left by a crash
  between writing a file and its row) go too, once they are a day old.
- Messages older than RETENTION_MESSAGE_DAYS, and conversations with nothing newer; the
  review items and feedback attached to them go with them (cascade); screenshots no
  longer used by any message and that old go as well.
- The admin's change history (django_admin_log) older than RETENTION_MESSAGE_DAYS.
- Audit events older than RETENTION_MESSAGE_DAYS keep their metadata (who, what, which
  object, when, request id) but lose details and IP ("reduced"); the hash chain stays
  verifiable because the payload enters it through its digest (audit/models.py).
- Audit events older than RETENTION_AUDIT_DAYS are deleted from the start of the chain;
  a checkpoint keeps the last deleted event's seq and hash as the chain's new anchor, and
  an `audit.purge` event in the chain vouches for it.

The database triggers refuse UPDATE and DELETE on audit events; the purge opens its
controlled path in its own short transaction (PostgreSQL: `SET LOCAL
glimpse.audit_retention = 'purge'`; SQLite: a gate row, audit/gate.py), and the
triggers still let it do nothing but reduce and delete.
"""

from __future__ import annotations

import datetime
import logging
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.db import connection, models, transaction
from django.utils import timezone

from assistant import storage
from assistant.models import Conversation, Message, Upload

from . import gate
from .models import AuditChainHead, AuditCheckpoint, AuditEvent
from .services import audit_record

logger = logging.getLogger(__name__)

BATCH = 500
# A file younger than this may belong to an upload whose row is still being written.
ORPHAN_FILE_MIN_AGE = datetime.timedelta(days=1)


@dataclass
class PurgeReport:
    uploads: int = 0
    files: int = 0
    orphan_files: int = 0
    conversations: int = 0
    messages: int = 0
    audit_reduced: int = 0
    audit_deleted: int = 0
    admin_log: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def purge_expired(*, now: datetime.datetime | None = None) -> PurgeReport:
    now = now or timezone.now()
    report = PurgeReport()
    if settings.RETENTION_UPLOAD_DAYS > 0:
        cutoff = now - datetime.timedelta(days=settings.RETENTION_UPLOAD_DAYS)
        _purge_uploads(Upload.objects.filter(created_at__lt=cutoff), report)
        _purge_orphan_files(now, report)
    if settings.RETENTION_MESSAGE_DAYS > 0:
        cutoff = now - datetime.timedelta(days=settings.RETENTION_MESSAGE_DAYS)
        _purge_messages(cutoff, report)
        unused = Upload.objects.filter(created_at__lt=cutoff, message__isnull=True)
        _purge_uploads(unused, report)
        report.audit_reduced = audit_events_reduce(AuditEvent.objects.filter(created_at__lt=cutoff))
        # The admin's change history names objects (a username, a conversation title);
        # the audit trail is the lasting record, this goes with the messages.
        report.admin_log = LogEntry.objects.filter(action_time__lt=cutoff).delete()[0]
    if settings.RETENTION_AUDIT_DAYS > 0:
        cutoff = now - datetime.timedelta(days=settings.RETENTION_AUDIT_DAYS)
        report.audit_deleted = _purge_audit(cutoff)
    logger.info("retention purge: %s", report.as_dict())
    return report


# --- uploads and files -------------------------------------------------------------------------


def upload_files(upload: Upload) -> list[str]:
    """Every file an upload row points at (original, model copy, and any copy the safety
    pipeline adds), found by value so a new kind of copy cannot be forgotten."""
    prefix = f"{storage.UPLOAD_DIR}/"
    paths = []
    for field in Upload._meta.concrete_fields:
        if isinstance(field, models.CharField) and not isinstance(field, models.TextField):
            value = getattr(upload, field.attname)
            if isinstance(value, str) and value.startswith(prefix):
                paths.append(value)
    return paths


def _purge_uploads(queryset, report: PurgeReport) -> None:
    while True:
        batch = list(queryset.order_by("created_at")[:BATCH])
        if not batch:
            return
        paths = [p for upload in batch for p in upload_files(upload)]
        with transaction.atomic():
            Upload.objects.filter(pk__in=[u.pk for u in batch]).delete()
            audit_record(
                actor=None,
                action="retention.uploads",
                obj=("upload", "*"),
                details={"deleted": len(batch), "files": len(paths)},
            )
            transaction.on_commit(lambda paths=paths: storage.delete(*paths))
        report.uploads += len(batch)
        report.files += len(paths)


def _purge_orphan_files(now: datetime.datetime, report: PurgeReport) -> None:
    folder = Path(settings.MEDIA_ROOT) / storage.UPLOAD_DIR
    if not folder.is_dir():
        return
    known: set[str] = set()
    for upload in Upload.objects.iterator(chunk_size=2000):
        known.update(upload_files(upload))
    oldest = (now - ORPHAN_FILE_MIN_AGE).timestamp()
    orphans = [
        f"{storage.UPLOAD_DIR}/{entry.name}"
        for entry in folder.iterdir()
        if entry.is_file()
        and f"{storage.UPLOAD_DIR}/{entry.name}" not in known
        and entry.stat().st_mtime < oldest
    ]
    if orphans:
        storage.delete(*orphans)
        with transaction.atomic():
            audit_record(
                actor=None,
                action="retention.orphan_files",
                obj=("upload", "*"),
                details={"deleted": len(orphans)},
            )
    report.orphan_files += len(orphans)


# --- conversations and messages ---------------------------------------------------------------


def _purge_messages(cutoff: datetime.datetime, report: PurgeReport) -> None:
    # Whole conversations nobody has written to since the cutoff.
    stale = Conversation.objects.filter(updated_at__lt=cutoff).exclude(
        messages__created_at__gte=cutoff
    )
    while True:
        ids = list(stale.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            break
        with transaction.atomic():
            messages = Message.objects.filter(conversation_id__in=ids).count()
            Conversation.objects.filter(pk__in=ids).delete()
            audit_record(
                actor=None,
                action="retention.conversations",
                obj=("conversation", "*"),
                details={"deleted": len(ids), "messages": messages},
            )
        report.conversations += len(ids)
        report.messages += messages
    # Old turns of conversations still in use. Deleting a question deletes its answer.
    old = Message.objects.filter(created_at__lt=cutoff)
    while True:
        ids = list(old.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            break
        with transaction.atomic():
            deleted, per_model = Message.objects.filter(pk__in=ids).delete()
            count = per_model.get(Message._meta.label, 0)
            audit_record(
                actor=None,
                action="retention.messages",
                obj=("message", "*"),
                details={"deleted": count},
            )
        report.messages += count


# --- audit events -------------------------------------------------------------------------------


@contextmanager
def _audit_maintenance():
    """The controlled path through the append-only trigger, for this transaction only:
    a transaction-local setting on PostgreSQL, a gate row on SQLite (audit/gate.py)."""
    postgres = connection.vendor == "postgresql"
    with gate.opened(gate.PURGE):
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL glimpse.audit_retention = 'purge'")
        yield
        # Closed again at once, also when this runs inside a longer transaction. (On an
        # error the rollback undoes the SET LOCAL and the gate row, savepoint or not.)
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL glimpse.audit_retention = ''")


def audit_events_reduce(queryset) -> int:
    """Drop details and IP of these events, keeping their metadata and the chain.

    `audit.purge` events keep their details: they vouch for the chain's anchor."""
    ids = list(
        queryset.filter(reduced_at__isnull=True)
        .exclude(action="audit.purge")
        .values_list("pk", flat=True)
    )
    table = AuditEvent._meta.db_table
    done = 0
    with _audit_maintenance():
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            placeholders = ", ".join(["%s"] * len(chunk))
            with connection.cursor() as cursor:
                # Raw SQL: the ORM refuses every update of audit events by design.
                cursor.execute(
                    f"UPDATE {table} SET details = %s, ip = NULL, reduced_at = %s "  # noqa: S608 (table name from _meta; values are parameters)
                    f"WHERE id IN ({placeholders})",
                    [
                        "{}",
                        AuditEvent._meta.get_field("reduced_at").get_db_prep_value(
                            timezone.now(), connection
                        ),
                        *chunk,
                    ],
                )
                done += cursor.rowcount
    return done


def _purge_audit(cutoff: datetime.datetime) -> int:
    with transaction.atomic():
        # Writers append under this lock; holding it keeps the anchor and the new purge
        # event consistent with the head.
        AuditChainHead.objects.select_for_update().filter(pk=1).first()
        last = (
            AuditEvent.objects.filter(created_at__lt=cutoff)
            .order_by("-seq")
            .only("seq", "hash")
            .first()
        )
        if last is None:
            return 0
        table = AuditEvent._meta.db_table
        with _audit_maintenance():
            with connection.cursor() as cursor:
                # A prefix of the chain, by seq: the anchor then describes it exactly.
                cursor.execute(f"DELETE FROM {table} WHERE seq <= %s", [last.seq])  # noqa: S608
                deleted = cursor.rowcount
        checkpoint = AuditCheckpoint(through_seq=last.seq, through_hash=last.hash, deleted=deleted)
        checkpoint._chained = True  # checkpoints are written here only
        checkpoint.save(force_insert=True)
        audit_record(
            actor=None,
            action="audit.purge",
            obj=checkpoint,
            details={"through_seq": last.seq, "deleted": deleted},
        )
    return deleted
