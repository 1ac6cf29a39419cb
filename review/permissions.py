"""Who may review: the "Reviewers" group and the permissions it carries.

The group is created by a data migration; reviewers_group_ensure() recreates it (with its
permissions) wherever it may be missing, e.g. after a test flushed the tables.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

REVIEWERS_GROUP = "Reviewers"

# (app_label, codename)
REVIEWER_PERMISSIONS = (
    ("review", "review_conversation"),
    ("review", "export_reviewitem"),
    ("review", "view_dashboard"),
    ("review", "view_reviewitem"),
    ("review", "view_answerfeedback"),
)

CAN_REVIEW = "review.review_conversation"
CAN_EXPORT = "review.export_reviewitem"
CAN_VIEW_DASHBOARD = "review.view_dashboard"


def reviewers_group_ensure() -> Group:
    group, _ = Group.objects.get_or_create(name=REVIEWERS_GROUP)
    wanted = Permission.objects.filter(
        content_type__app_label="review",
        codename__in=[codename for _, codename in REVIEWER_PERMISSIONS],
    )
    group.permissions.add(*wanted)
    return group
