"""The guarded querysets become the models' base managers too (Django's internals use
the base manager; a plain one would hand out update() and delete())."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_sqlite_append_only_trigger")]

    operations = [
        migrations.AlterModelOptions(
            name="auditchainhead",
            options={"base_manager_name": "objects"},
        ),
        migrations.AlterModelOptions(
            name="auditcheckpoint",
            options={"base_manager_name": "objects", "ordering": ["-through_seq"]},
        ),
        migrations.AlterModelOptions(
            name="auditevent",
            options={"base_manager_name": "objects", "ordering": ["-seq"]},
        ),
    ]
