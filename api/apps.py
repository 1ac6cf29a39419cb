from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Partner API"

    def ready(self):
        # Registers the Bearer security scheme with drf-spectacular.
        from . import schema  # noqa: F401
