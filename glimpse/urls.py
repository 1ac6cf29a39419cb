from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # /healthz, /readyz, /metrics (ops/urls.py)
    path("", include("ops.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    # Partner API: /v1/... and the OpenAPI schema and docs under /api/ (api/urls.py).
    path("", include("api.urls")),
    # Reviewer pages and dashboard (review/urls.py); answer feedback from the chat page.
    path("review/", include("review.urls")),
    path("", include("review.feedback_urls")),
    path("", include("assistant.urls")),
]
