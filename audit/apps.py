from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail and retention"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
