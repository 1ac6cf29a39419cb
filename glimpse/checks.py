"""System checks that refuse unsafe production settings.

They run with every management command, so `manage.py check --deploy` and the start of
daphne under GLIMPSE_ENV=production both stop on a misconfiguration.
"""

from django.conf import settings
from django.core.checks import Error, register


@register()
def production_settings(app_configs, **kwargs):
    if settings.GLIMPSE_ENV != "production":
        return []
    errors = []
    if settings.DEBUG:
        errors.append(Error("DEBUG must be off in production.", id="glimpse.E001"))
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(Error("ALLOWED_HOSTS must list real host names, not '*'.", id="glimpse.E002"))
    if len(settings.SECRET_KEY) < 32:
        errors.append(Error("SECRET_KEY must be set to a long random value.", id="glimpse.E003"))
    if not settings.DATABASE_URL:
        errors.append(Error("Production needs DATABASE_URL (PostgreSQL).", id="glimpse.E004"))
    if settings.INFERENCE_MODE == "celery" and not settings.REDIS_URL:
        errors.append(Error("INFERENCE_MODE=celery needs REDIS_URL.", id="glimpse.E005"))
    return errors
