from django.apps import AppConfig


class GlimpseConfig(AppConfig):
    name = "glimpse"

    def ready(self):
        from . import checks  # noqa: F401  (registers the deploy checks)
