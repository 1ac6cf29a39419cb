"""SQLite's stand-in for PostgreSQL's `SET LOCAL glimpse.audit_retention = 'purge'`.

SQLite has no session settings a trigger could read, so its append-only triggers
(migration 0005) look for a row in a small table instead: the retention purge inserts
one at the start of its transaction and deletes it again before that transaction ends.
SQLite lets one connection write at a time and never shows another connection
uncommitted rows, so the row is only ever seen by the purge's own statements, exactly
like the PostgreSQL setting (and a rollback takes it away too).

Two purposes:

- "purge": reduce (drop details and ip) and delete audit events, as on PostgreSQL;
- "flush": `manage.py flush` (and the test runner's flush between transactional tests)
  empties every table with DELETE, where PostgreSQL uses TRUNCATE, which its row
  triggers do not see. The flush gate also lets checkpoints be deleted.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from django.db import connection as default_connection
from django.db import transaction

GATE_TABLE = "audit_retention_gate"
PURGE = "purge"
FLUSH = "flush"


def open_sql(token: str, purpose: str) -> str:
    # Literal values: both come from this module (a uuid hex and a constant), and the
    # flush command runs plain SQL strings without parameters.
    assert purpose in (PURGE, FLUSH) and token.isalnum()
    return f"INSERT INTO {GATE_TABLE} (token, purpose) VALUES ('{token}', '{purpose}')"  # noqa: S608


def close_sql(token: str) -> str:
    assert token.isalnum()
    return f"DELETE FROM {GATE_TABLE} WHERE token = '{token}'"  # noqa: S608


def new_token() -> str:
    return uuid.uuid4().hex


@contextmanager
def opened(purpose: str, connection=None):
    """Open the gate for the rest of this block, inside one transaction (SQLite only;
    elsewhere a plain transaction)."""
    connection = connection or default_connection
    sqlite = connection.vendor == "sqlite"
    token = new_token()
    with transaction.atomic(using=connection.alias):
        if sqlite:
            with connection.cursor() as cursor:
                cursor.execute(open_sql(token, purpose))
        yield
        if sqlite:
            with connection.cursor() as cursor:
                cursor.execute(close_sql(token))
