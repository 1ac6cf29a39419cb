from django.apps import AppConfig


class PolicyConfig(AppConfig):
    name = "policy"
    verbose_name = "Safety policy"

    def ready(self):
        from . import signals  # noqa: F401 - connects the cache invalidation receivers
