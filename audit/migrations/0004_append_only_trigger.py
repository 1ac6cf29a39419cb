"""PostgreSQL refuses UPDATE and DELETE on audit events, whoever sends them.

The one exception is the retention purge (audit/retention.py): inside its transaction it
runs `SET LOCAL glimpse.audit_retention = 'purge'`, which lets it delete old events and
drop the payload (details, ip) of ageing ones, and nothing else: an UPDATE that touches
any other column is still refused. A database superuser can of course switch triggers
off; the hash chain (manage.py verify_audit_chain) is what catches that.

Checkpoints left by purges are never changed at all. TRUNCATE is left alone (it fires no
row triggers): it needs the table owner's privilege, and an emptied table disagrees with
the chain head, which verify reports.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION glimpse_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'audit_auditevent'
       AND coalesce(current_setting('glimpse.audit_retention', true), '') = 'purge' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        IF NEW.details = '{}'::jsonb AND NEW.ip IS NULL AND NEW.reduced_at IS NOT NULL
           AND (to_jsonb(NEW) - 'details' - 'ip' - 'reduced_at')
             = (to_jsonb(OLD) - 'details' - 'ip' - 'reduced_at') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Old audit events are removed only by the retention purge (manage.py purge_expired).';
END;
$$;
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION glimpse_audit_append_only();
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_auditcheckpoint;
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION glimpse_audit_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS glimpse_audit_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain_constraints")]

    operations = [migrations.RunPython(forward, backward)]
