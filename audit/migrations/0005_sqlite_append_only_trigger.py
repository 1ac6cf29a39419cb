"""SQLite refuses UPDATE and DELETE on audit events too (0004 did it for PostgreSQL).

SQLite triggers cannot read a session setting, so the retention purge opens its
controlled path by inserting a row into `audit_retention_gate` inside its transaction
and deleting it before the transaction ends (audit/gate.py). With a "purge" row present
the triggers let it do what PostgreSQL's lets it do and nothing more: delete events, and
drop the payload (details = '{}', ip = NULL, reduced_at set) while every other column
stays as it was. Checkpoints are never changed.

PostgreSQL's TRUNCATE (what `manage.py flush` uses there) fires no row triggers; SQLite's
flush is a DELETE per table, so audit's own `flush` command opens a "flush" gate for it
(audit/management/commands/flush.py), which also lets checkpoints go.

Django's SQLite schema editor rebuilds a table (new table, copy, drop, rename) for most
column changes, and the old table's triggers go with it: a later migration that alters
these tables must run `create_sqlite_triggers` again.
"""

from django.db import migrations

GATE = "audit_retention_gate"

# Every column of audit_auditevent that the purge's reduction must leave alone.
KEPT_COLUMNS = (
    "id",
    "seq",
    "created_at",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "request_id",
    "payload_digest",
    "prev_hash",
    "hash",
)

_unchanged = " AND ".join(f'NEW."{c}" IS OLD."{c}"' for c in KEPT_COLUMNS)

SQLITE_FORWARD = [
    f"CREATE TABLE IF NOT EXISTS {GATE} ("
    "token varchar(32) NOT NULL PRIMARY KEY, purpose varchar(10) NOT NULL)",
    f"""CREATE TRIGGER IF NOT EXISTS audit_event_append_only_update
BEFORE UPDATE ON audit_auditevent FOR EACH ROW
WHEN NOT (
    EXISTS (SELECT 1 FROM {GATE} WHERE purpose = 'purge')
    AND NEW.details = '{{}}' AND NEW.ip IS NULL AND NEW.reduced_at IS NOT NULL
    AND {_unchanged}
)
BEGIN
    SELECT RAISE(ABORT, 'audit_auditevent is append-only: UPDATE refused');
END""",
    f"""CREATE TRIGGER IF NOT EXISTS audit_event_append_only_delete
BEFORE DELETE ON audit_auditevent FOR EACH ROW
WHEN NOT EXISTS (SELECT 1 FROM {GATE} WHERE purpose IN ('purge', 'flush'))
BEGIN
    SELECT RAISE(ABORT, 'audit_auditevent is append-only: DELETE refused');
END""",
    """CREATE TRIGGER IF NOT EXISTS audit_checkpoint_append_only_update
BEFORE UPDATE ON audit_auditcheckpoint FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'audit_auditcheckpoint is append-only: UPDATE refused');
END""",
    f"""CREATE TRIGGER IF NOT EXISTS audit_checkpoint_append_only_delete
BEFORE DELETE ON audit_auditcheckpoint FOR EACH ROW
WHEN NOT EXISTS (SELECT 1 FROM {GATE} WHERE purpose = 'flush')
BEGIN
    SELECT RAISE(ABORT, 'audit_auditcheckpoint is append-only: DELETE refused');
END""",
]

SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS audit_event_append_only_update",
    "DROP TRIGGER IF EXISTS audit_event_append_only_delete",
    "DROP TRIGGER IF EXISTS audit_checkpoint_append_only_update",
    "DROP TRIGGER IF EXISTS audit_checkpoint_append_only_delete",
    f"DROP TABLE IF EXISTS {GATE}",
]


def create_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        # One statement per call: SQLite's driver runs a single statement at a time.
        for sql in SQLITE_FORWARD:
            schema_editor.execute(sql, params=None)


def drop_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_BACKWARD:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_append_only_trigger")]

    operations = [migrations.RunPython(create_sqlite_triggers, drop_sqlite_triggers)]
