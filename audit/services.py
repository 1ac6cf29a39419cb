"""The audit trail: one call per state change, inside the change's transaction.

audit_record appends one event to the hash chain. It locks the chain head row
(SELECT ... FOR UPDATE) for the rest of the caller's transaction, so concurrent writers
append strictly one after the other, and each event's seq and prev_hash are those of
the event committed just before it. A rolled-back change takes its event with it and
leaves no gap: the head row rolls back too.
"""

from __future__ import annotations

import ipaddress
import threading
from contextlib import contextmanager

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from . import chain, context
from .guard import clean_details
from .models import AuditChainHead, AuditEvent

# Sent inside the recording transaction, after the event is written; receivers that act
# on the event (review sampling) defer their own writes with transaction.on_commit.
event_recorded = Signal()

# The batch open on this thread (Django's connections are per thread too).
_open_batch = threading.local()


@contextmanager
def audit_batch():
    """Write the events recorded inside the block together as it ends: one head lock,
    one INSERT and one head update instead of those three per event. For the busy paths
    that record several events in one transaction (a question asked, an API answer
    started). Use it inside that transaction, around code that does not carry on after
    a failed nested block. The events are numbered and chained when the block ends, so
    the head is locked from then to the commit only; an exception inside the block
    writes nothing (the transaction rolls back with it)."""
    if getattr(_open_batch, "events", None) is not None:
        yield  # nested: the outermost block writes
        return
    events = _open_batch.events = []
    try:
        yield
        if events:
            if not transaction.get_connection().in_atomic_block:
                raise RuntimeError("audit_batch must end inside the transaction it records")
            _append(events)
            for event in events:
                event_recorded.send(sender=AuditEvent, event=event)
    finally:
        _open_batch.events = None


def audit_record(
    *, actor, action: str, obj, details: dict | None = None, record_ip: bool = True
) -> AuditEvent:
    """Append an event. `obj` is a model instance, or a (type, id) pair for something that
    is not one (e.g. ("conversation", "*") for a list view). The request id and client IP
    come from the current request (audit.middleware); `record_ip=False` leaves the IP out
    (a person erasing their account). Inside audit_batch the event is written when the
    batch ends."""
    # Refusing to run outside a transaction makes "change without audit" impossible to
    # write by accident: both commit or neither does.
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    details = clean_details(details)
    request = context.current()
    object_type, object_id = _object_ref(obj)
    ip = _normal_ip(request.ip) if record_ip else None
    event = AuditEvent(
        actor_id=getattr(actor, "pk", None),
        action=action[:60],
        object_type=object_type[:60],
        object_id=object_id[:64],
        request_id=request.request_id[:64],
        details=details,
        ip=ip,
        payload_digest=chain.payload_digest(details, ip),
    )
    batch = getattr(_open_batch, "events", None)
    if batch is not None:
        batch.append(event)
        return event
    _append([event])
    event_recorded.send(sender=AuditEvent, event=event)
    return event


def _append(events: list[AuditEvent]) -> None:
    """Chain the events after the head and write them: lock the head, insert the events,
    move the head. Three statements written out here: every question and every API
    answer records events, and the ORM spent about 1.5 ms of CPU building these three."""
    connection = transaction.get_connection()
    head = _chain_head_locked(connection)
    for event in events:
        _chain(event, head)
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Names come from the models' metadata; every value is a parameter.
    sql = (
        f"INSERT INTO {_quoted(connection, AuditEvent._meta.db_table)} "  # noqa: S608
        f"({', '.join(_quoted(connection, field.column) for field in fields)}) "
        f"VALUES {', '.join([row] * len(events))} RETURNING {_quoted(connection, 'id')}"
    )
    params = [
        field.get_db_prep_save(getattr(event, field.attname), connection)
        for event in events
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [pk for (pk,) in cursor.fetchall()]
        cursor.execute(
            f"UPDATE {_quoted(connection, AuditChainHead._meta.db_table)} "  # noqa: S608
            "SET last_seq = %s, last_hash = %s WHERE id = 1",
            [head.last_seq, head.last_hash],
        )
    for event, pk in zip(events, ids, strict=True):
        event.pk = pk
        event._state.adding = False
        event._state.db = connection.alias


def _quoted(connection, name: str) -> str:
    return connection.ops.quote_name(name)


def _chain(event: AuditEvent, head: AuditChainHead) -> None:
    """Give the event its place after the (locked) head, and move the head onto it."""
    event.seq = head.last_seq + 1
    event.created_at = timezone.now()
    event.prev_hash = head.last_hash
    event.hash = chain.event_hash(event.prev_hash, chained_fields(event))
    head.last_seq, head.last_hash = event.seq, event.hash


def chained_fields(event: AuditEvent) -> dict:
    return {
        "seq": event.seq,
        "created_at": chain.timestamp(event.created_at),
        "actor_id": event.actor_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "request_id": event.request_id,
        "payload_digest": event.payload_digest,
    }


def _chain_head_locked(connection) -> AuditChainHead:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT last_seq, last_hash "  # noqa: S608
            f"FROM {_quoted(connection, AuditChainHead._meta.db_table)} WHERE id = 1{lock}"
        )
        row = cursor.fetchone()
    if row is not None:
        return AuditChainHead(pk=1, last_seq=row[0], last_hash=row[1])
    # First event ever (or the head row was lost): start from the newest event, if any.
    # ON CONFLICT DO NOTHING lets two first writers race safely; the loser then waits on
    # the winner's row lock below.
    newest = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
    first = AuditChainHead(
        pk=1,
        last_seq=newest.seq if newest else 0,
        last_hash=newest.hash if newest else chain.GENESIS_HASH,
    )
    first._chained = True
    AuditChainHead.objects.bulk_create([first], ignore_conflicts=True)
    return AuditChainHead.objects.select_for_update().get(pk=1)


def _object_ref(obj) -> tuple[str, str]:
    if obj is None:
        return "", ""
    if isinstance(obj, tuple):
        object_type, object_id = obj
        return str(object_type), str(object_id)
    return type(obj).__name__.lower(), str(obj.pk)


def _normal_ip(value: str | None) -> str | None:
    # The same spelling the database gives back (PostgreSQL's inet compresses IPv6), so
    # the payload digest of a stored event matches the one computed here.
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None
