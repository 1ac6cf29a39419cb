"""Request metrics, a clear 503 when the database is gone, and the web-side watchdog."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse

from glimpse.api_errors import error_response
from glimpse.middleware_modes import EitherModeMiddleware

from . import metrics

logger = logging.getLogger(__name__)

DATABASE_DOWN_MESSAGE = "The service is temporarily unavailable. Please try again in a minute."
DATABASE_DOWN_RETRY_AFTER = "30"
_DATABASE_ERRORS = (OperationalError, InterfaceError)
_FLAG = "_glimpse_database_down"

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable</title></head>
<body><h1>Temporarily unavailable</h1>
<p>Glimpse cannot reach its database right now. Nothing you sent was half-saved; please
try again in a minute.</p></body></html>
"""


class RequestMetricsMiddleware(EitherModeMiddleware):
    """Counts every response by route pattern (never the raw path: ids would explode the
    number of series) and times it."""

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._count(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._count(request, response, started)
        return response

    @staticmethod
    def _count(request, response, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        metrics.http_response(
            route=route[:100],
            method=request.method if request.method in _METHODS else "OTHER",
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _remember_database_error(sender, request=None, **kwargs):
    # Django turns an exception raised inside another middleware (a session save, say)
    # into a 500 before it reaches us; this signal still names the cause.
    import sys

    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, _DATABASE_ERRORS):
        setattr(request, _FLAG, True)


got_request_exception.connect(_remember_database_error, dispatch_uid="ops-database-down")


def database_unavailable_response(request):
    accept = request.headers.get("Accept", "")
    if "text/html" in accept and "application/json" not in accept:
        response = HttpResponse(_HTML, status=503, content_type="text/html; charset=utf-8")
    else:
        response = error_response(503, DATABASE_DOWN_MESSAGE, "database_unavailable")
    response["Retry-After"] = DATABASE_DOWN_RETRY_AFTER
    return response


class DatabaseUnavailableMiddleware(EitherModeMiddleware):
    """PostgreSQL unreachable: a 503 with Retry-After (JSON for scripts and the API, a
    short page for browsers) instead of a 500. Writes happen in transactions, so a
    request that failed here left no half-written rows."""

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self._checked(request, self.get_response(request))

    async def _acall(self, request):
        return self._checked(request, await self.get_response(request))

    @staticmethod
    def _checked(request, response):
        if response.status_code == 500 and getattr(request, _FLAG, False):
            logger.error("database unavailable while serving %s", request.path)
            return database_unavailable_response(request)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, _DATABASE_ERRORS):
            logger.error("database unavailable while serving %s", request.path)
            return database_unavailable_response(request)
        return None


class StartWatchdogMiddleware:
    """Starts the answer watchdog in a web server process, then leaves the chain.

    Middleware is instantiated when the ASGI handler is built, which happens in server
    processes (daphne) and not in workers or management commands: the right place to
    start a per-process background thread."""

    # Either mode: it leaves the chain, and must not make Django adapt the chain for it.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        if (
            settings.INFERENCE_MODE == "celery"
            and settings.ANSWER_WATCHDOG
            and settings.RUN_STARTUP_TASKS
        ):
            from .watchdog import start_watchdog_thread

            start_watchdog_thread()
        raise MiddlewareNotUsed
