"""The hash chain's arithmetic: canonical JSON, digests, the link between two events.

No Django here. The format is part of the stored data (every hash depends on it), so it
must never change without a migration that re-anchors the chain.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from typing import Any

GENESIS_HASH = "0" * 64

# The fields that enter an event's hash directly, in this order of documentation (the JSON
# itself is key-sorted). The payload (details, ip) enters through payload_digest.
CHAINED_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "request_id",
    "payload_digest",
)


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number in audit data")
        # PostgreSQL's jsonb gives 2.0 back as 2.0 but 1e20 as an integer: integral floats
        # are written as integers so a stored value hashes like the one written.
        return int(value) if value.is_integer() else value
    if isinstance(value, datetime.datetime):
        return timestamp(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    raise TypeError(f"{type(value).__name__} cannot go into the audit chain")


def canonical_json(value: Any) -> str:
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def timestamp(value: datetime.datetime) -> str:
    """UTC, always with microseconds, so a value read back from any database matches."""
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def payload_digest(details: dict, ip: str | None) -> str:
    return hashlib.sha256(canonical_json({"details": details, "ip": ip}).encode()).hexdigest()


def event_hash(prev_hash: str, fields: dict) -> str:
    missing = set(CHAINED_FIELDS) - set(fields)
    if missing:
        raise ValueError(f"chained fields missing: {sorted(missing)}")
    body = canonical_json({name: fields[name] for name in CHAINED_FIELDS})
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()
