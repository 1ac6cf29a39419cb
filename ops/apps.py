from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Health, readiness, metrics, overload and fault handling (docs/deploy.md)."""

    name = "ops"
