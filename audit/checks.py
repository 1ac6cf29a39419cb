"""System checks for the retention settings."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def retention_settings(app_configs, **kwargs):
    problems = []
    for name in ("RETENTION_UPLOAD_DAYS", "RETENTION_MESSAGE_DAYS", "RETENTION_AUDIT_DAYS"):
        if getattr(settings, name) < 0:
            problems.append(
                Error(f"{name} must be 0 (keep forever) or a number of days.", id="audit.E001")
            )
    audit, messages = settings.RETENTION_AUDIT_DAYS, settings.RETENTION_MESSAGE_DAYS
    if audit and (not messages or audit < messages):
        problems.append(
            Warning(
                "RETENTION_AUDIT_DAYS is shorter than RETENTION_MESSAGE_DAYS: the audit trail "
                "would forget changes to data that still exists.",
                id="audit.W001",
            )
        )
    if not 0 <= settings.REVIEW_SAMPLE_RATE <= 1:
        problems.append(Error("REVIEW_SAMPLE_RATE must be between 0 and 1.", id="review.E001"))
    return problems
