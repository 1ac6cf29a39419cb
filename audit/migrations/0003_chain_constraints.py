from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_hash_chain")]

    operations = [
        migrations.AlterField("auditevent", "seq", models.BigIntegerField(unique=True)),
        migrations.AlterField("auditevent", "hash", models.CharField(max_length=64, unique=True)),
        migrations.AlterModelOptions(name="auditevent", options={"ordering": ["-seq"]}),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["object_type", "object_id"], name="audit_audit_object__0e78a5_idx"),
        ),
    ]
