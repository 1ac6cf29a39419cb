"""Walks the audit chain and reports the first event that does not fit.

An edited chained field changes the event's own hash; an edited payload no longer
matches its digest; a deleted event leaves a hole in seq and a prev_hash that points at
nothing; events cut off the end disagree with the chain head; a forged purge anchor has
no `audit.purge` event vouching for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import chain
from .models import AuditChainHead, AuditCheckpoint, AuditEvent
from .services import chained_fields


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    last_seq: int
    last_hash: str
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""


def audit_chain_verify() -> ChainReport:
    anchor = AuditCheckpoint.objects.order_by("-through_seq").first()
    expected_seq = anchor.through_seq + 1 if anchor else 1
    expected_prev = anchor.through_hash if anchor else chain.GENESIS_HASH
    checked = 0
    anchor_vouched = anchor is None

    def broken(event: AuditEvent | None, reason: str) -> ChainReport:
        return ChainReport(
            ok=False,
            checked=checked,
            last_seq=expected_seq - 1,
            last_hash=expected_prev,
            broken_seq=event.seq if event else None,
            broken_id=event.pk if event else None,
            reason=reason,
        )

    events = AuditEvent.objects.order_by("seq").iterator(chunk_size=2000)
    for event in events:
        if event.seq < expected_seq:
            return broken(
                event, f"event #{event.seq} lies before the purge anchor #{expected_seq - 1}"
            )
        if event.seq > expected_seq:
            missing = (
                f"#{expected_seq}"
                if event.seq == expected_seq + 1
                else f"#{expected_seq}-#{event.seq - 1}"
            )
            return broken(event, f"event(s) {missing} missing before this one (deleted?)")
        if event.prev_hash != expected_prev:
            return broken(event, "prev_hash does not match the previous event's hash")
        if chain.event_hash(event.prev_hash, chained_fields(event)) != event.hash:
            return broken(event, "hash does not match the event's fields (edited?)")
        if event.reduced_at is None:
            if chain.payload_digest(event.details, event.ip) != event.payload_digest:
                return broken(event, "details or ip do not match their digest (edited?)")
        elif event.details != {} or event.ip is not None:
            return broken(event, "a reduced event still carries a payload")
        if (
            anchor is not None
            and event.action == "audit.purge"
            and event.details.get("through_seq") == anchor.through_seq
        ):
            anchor_vouched = True
        checked += 1
        expected_prev = event.hash
        expected_seq += 1

    head = AuditChainHead.objects.filter(pk=1).first()
    last_seq = expected_seq - 1
    if head is None and last_seq > 0:
        return broken(None, "the chain head row is missing")
    if head is not None and (head.last_seq, head.last_hash) != (last_seq, expected_prev):
        return broken(
            None, f"the chain head says the newest event is #{head.last_seq}, found #{last_seq}"
        )
    if not anchor_vouched:
        return broken(None, f"no audit.purge event vouches for the anchor #{anchor.through_seq}")
    return ChainReport(ok=True, checked=checked, last_seq=last_seq, last_hash=expected_prev)
