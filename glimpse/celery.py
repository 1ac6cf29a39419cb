"""The Celery app. Web processes only send tasks; GPU workers run them (docs/deploy.md)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glimpse.settings")

app = Celery("glimpse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["inference", "ops", "audit"])
