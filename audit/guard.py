"""What may go into an audit event's details: identifiers, counts, short codes. No prose.

The audit trail is kept far longer than conversations, so it must never become a second
copy of them. Every string is run through the PII redactor (a stray phone number becomes
"[PHONE]"), and anything that looks like free text (long strings) is refused outright:
a caller that tries is a bug, and the error says so in its tests.
"""

from __future__ import annotations

import datetime
import math
import re
import uuid

MAX_STRING = 100
MAX_ITEMS = 50
MAX_DEPTH = 3
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,39}$")
# Identifiers the redactor must not touch (a UUID's digit group can look like a phone).
_OPAQUE_ID = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,64})$"
)


class AuditDetailError(ValueError):
    """Details that could carry content: a programming error in the caller."""


def clean_details(details: dict | None) -> dict:
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise AuditDetailError("audit details must be a dict of ids and counts")
    return _clean_dict(details, depth=1)


def _clean_dict(value: dict, *, depth: int) -> dict:
    if depth > MAX_DEPTH:
        raise AuditDetailError("audit details are nested too deeply")
    if len(value) > MAX_ITEMS:
        raise AuditDetailError("audit details have too many keys")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise AuditDetailError(f"audit detail key {key!r} is not a short identifier")
        out[key] = _clean_value(item, depth=depth)
    return out


def _clean_value(value, *, depth: int):
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditDetailError("audit details must be finite numbers")
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return _clean_string(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        if len(items) > MAX_ITEMS:
            raise AuditDetailError("audit detail lists hold at most 50 items")
        return [_clean_value(item, depth=depth + 1) for item in items]
    if isinstance(value, dict):
        return _clean_dict(value, depth=depth + 1)
    raise AuditDetailError(f"{type(value).__name__} cannot go into audit details")


def _clean_string(value: str) -> str:
    if len(value) > MAX_STRING:
        raise AuditDetailError(
            f"audit details take ids, counts and short codes, not free text "
            f"({len(value)} characters; at most {MAX_STRING})"
        )
    if not value or _OPAQUE_ID.match(value):
        return value
    # Imported here: the redactor loads phone metadata, which only writers need.
    from assistant.safety.pii import redact_text

    return redact_text(value).text
