"""Probes and the metrics endpoint: /healthz, /readyz, /metrics."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from glimpse.api_errors import error_response

from . import metrics
from .health import readiness


@never_cache
@require_GET
def healthz(request):
    """The process is alive and serving; touches nothing else (a liveness probe)."""
    return JsonResponse({"ok": True})


@never_cache
@require_GET
def readyz(request):
    """Database, Redis and an engine: take this process out of rotation when not ready."""
    report = readiness()
    return JsonResponse(report, status=200 if report["ready"] else 503)


def _metrics_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())
    try:
        # REMOTE_ADDR, not X-Forwarded-For: a client must not be able to claim an address.
        # Behind the proxy, /metrics is not proxied at all (docs/deploy/nginx.conf).
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for network in settings.METRICS_ALLOWED_NETWORKS:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


@never_cache
@require_GET
def metrics_view(request):
    if not _metrics_allowed(request):
        return error_response(
            401 if settings.METRICS_TOKEN else 403,
            "Metrics need a bearer token or an allowed network.",
            "metrics_forbidden",
            WWW_Authenticate="Bearer",
        )
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
