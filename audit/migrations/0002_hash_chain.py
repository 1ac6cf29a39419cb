"""The audit trail becomes a hash chain: seq, prev_hash, hash, request id, IP; the actor
becomes a plain id (no foreign key), so erasing an account never rewrites its events.

Existing events are chained in id order.
"""

from django.db import migrations, models

from audit import chain


def copy_actor(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    for event in AuditEvent.objects.exclude(actor=None).only("pk", "actor_id"):
        AuditEvent.objects.filter(pk=event.pk).update(actor_pk=event.actor_id)


def chain_existing(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    prev_hash, seq = chain.GENESIS_HASH, 0
    for event in AuditEvent.objects.order_by("id").iterator():
        seq += 1
        digest = chain.payload_digest(event.details, None)
        fields = {
            "seq": seq,
            "created_at": chain.timestamp(event.created_at),
            "actor_id": event.actor_id,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "request_id": "",
            "payload_digest": digest,
        }
        event_hash = chain.event_hash(prev_hash, fields)
        AuditEvent.objects.filter(pk=event.pk).update(
            seq=seq, payload_digest=digest, prev_hash=prev_hash, hash=event_hash
        )
        prev_hash = event_hash
    AuditChainHead.objects.update_or_create(
        pk=1, defaults={"last_seq": seq, "last_hash": prev_hash}
    )


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.AddField("auditevent", "actor_pk", models.BigIntegerField(null=True, blank=True)),
        migrations.RunPython(copy_actor, migrations.RunPython.noop),
        migrations.RemoveField("auditevent", "actor"),
        migrations.RenameField("auditevent", "actor_pk", "actor_id"),
        migrations.AlterField(
            "auditevent", "actor_id", models.BigIntegerField(null=True, blank=True, db_index=True)
        ),
        migrations.AlterField("auditevent", "created_at", models.DateTimeField(db_index=True)),
        migrations.AddField("auditevent", "seq", models.BigIntegerField(null=True)),
        migrations.AddField(
            "auditevent",
            "request_id",
            models.CharField(max_length=64, blank=True, default="", db_index=True),
            preserve_default=False,
        ),
        migrations.AddField("auditevent", "ip", models.GenericIPAddressField(null=True, blank=True)),
        migrations.AddField("auditevent", "reduced_at", models.DateTimeField(null=True, blank=True)),
        migrations.AddField(
            "auditevent",
            "payload_digest",
            models.CharField(max_length=64, default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            "auditevent", "prev_hash", models.CharField(max_length=64, default=""), preserve_default=False
        ),
        migrations.AddField("auditevent", "hash", models.CharField(max_length=64, null=True)),
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("last_seq", models.BigIntegerField(default=0)),
                ("last_hash", models.CharField(default="0" * 64, max_length=64)),
            ],
        ),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("through_seq", models.BigIntegerField()),
                ("through_hash", models.CharField(max_length=64)),
                ("deleted", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["-through_seq"]},
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
    ]
