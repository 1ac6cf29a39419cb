"""The "Reviewers" group: staff who work the review queue, see the dashboard and export
labelled items, without being superusers. Add people to it in the admin."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Reviewers"
CODENAMES = [
    "review_conversation",
    "export_reviewitem",
    "view_dashboard",
    "view_reviewitem",
    "view_answerfeedback",
]


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate); make
    # the review app's now so the group can hold them.
    app_config = apps.get_app_config("review")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="review", codename__in=CODENAMES)
    )


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0002_feedback_and_verdicts"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
