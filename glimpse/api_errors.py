"""One JSON error shape for every API response: {"error": {"type", "message", "code"}}.

Three places produce errors and all of them end here:
- DRF views: `exception_handler` (set as DRF's EXCEPTION_HANDLER);
- plain Django views and the async chat views: `error_response`;
- Django itself (no such URL, method not allowed, body too large, an unhandled
  exception): `ApiErrorMiddleware` rewrites those responses for API paths, which would
  otherwise be HTML pages.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from .middleware_modes import EitherModeMiddleware

# Paths whose every response, errors included, is JSON.
API_PATH_PREFIXES = ("/v1/", "/api/")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    406: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}

INTERNAL_ERROR_MESSAGE = "Something went wrong on our side. It was logged; please try again."


def error_body(status: int, message: str, code: str) -> dict:
    return {"error": {"type": _TYPES.get(status, "api_error"), "message": message, "code": code}}


def error_response(status: int, message: str, code: str, **headers) -> JsonResponse:
    response = JsonResponse(error_body(status, message, code), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIXES)


# --- DRF -----------------------------------------------------------------------------------


def exception_handler(exc, context):
    # Refusals from the services (assistant.errors.ServiceError) carry their own status.
    from assistant.errors import ServiceError

    if isinstance(exc, ServiceError):
        return error_response(exc.status, exc.message, exc.code)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "The request body is too large.", "request_too_large")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    message, code = _describe(exc, response.data)
    response.data = error_body(response.status_code, message, code)
    # Retry-After and the like, from exceptions that carry extra headers (api.errors.ApiError).
    for name, value in (getattr(exc, "headers", None) or {}).items():
        response[name] = value
    return response


def _describe(exc, data) -> tuple[str, str]:
    if getattr(exc, "error_code", None):  # api.errors.ApiError
        return exc.message, exc.error_code
    if isinstance(exc, drf_exceptions.ValidationError):
        return _first_validation_error(data), "invalid_request"
    detail = data.get("detail") if isinstance(data, dict) else None
    message = str(detail) if detail else "The request was not valid."
    code = getattr(detail, "code", None) or "invalid_request"
    return message, str(code)


def _first_validation_error(data, path: str = "") -> str:
    """'messages.0.content: This field is required.' from DRF's nested error structure."""
    if isinstance(data, dict):
        for key, value in data.items():
            name = "" if key == "non_field_errors" else str(key)
            return _first_validation_error(value, f"{path}.{name}".strip(".") if name else path)
    if isinstance(data, list) and data:
        first = data[0]
        if isinstance(first, dict | list):
            return _first_validation_error(first, f"{path}.0" if path else "0")
        return f"{path}: {first}" if path else str(first)
    return f"{path}: {data}" if path else str(data or "The request was not valid.")


# --- Django's own errors on API paths -------------------------------------------------------


class ApiErrorMiddleware(EitherModeMiddleware):
    """For /v1/ and /api/ paths: refuse oversized bodies before any parsing, turn
    exceptions into JSON errors, and rewrite Django's HTML error pages (404 for an unknown
    URL, 405, 413, 500) into the JSON shape. Async-capable, so it never pins a request to
    the shared sync thread."""

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self._before(request) or self._after(request, self.get_response(request))

    async def __acall__(self, request):
        refused = self._before(request)
        if refused is not None:
            return refused
        return self._after(request, await self.get_response(request))

    def _before(self, request):
        if not is_api_path(request.path_info):
            return None
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "Content-Length is not a number.", "bad_request")
        limit = settings.API_MAX_BODY_BYTES
        if declared > limit:
            return error_response(
                413,
                f"The request body is larger than {limit // (1024 * 1024)} MB.",
                "request_too_large",
            )
        return None

    def _after(self, request, response):
        if not is_api_path(request.path_info) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        if getattr(response, "streaming", False):
            return response
        replacement = self._json_for(request, response)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if response.has_header(header):
                replacement[header] = response[header]
        return replacement

    def _json_for(self, request, response):
        status = response.status_code
        if status == 404:
            return error_response(
                404,
                f"No such endpoint: {request.method} {request.path}. "
                "The API reference is at /api/docs/.",
                "unknown_endpoint",
            )
        if status == 405:
            allowed = response.get("Allow", "")
            return error_response(
                405,
                f"{request.method} is not allowed on {request.path}"
                + (f"; use {allowed}." if allowed else "."),
                "method_not_allowed",
            )
        if status == 413:
            return error_response(413, "The request body is too large.", "request_too_large")
        if status == 500:
            return error_response(status, INTERNAL_ERROR_MESSAGE, "internal_error")
        if status == 503:
            return error_response(
                503, "The service is temporarily unavailable. Please try again.", "unavailable"
            )
        known = {400: "bad_request", 403: "forbidden", 401: "not_authenticated"}
        code = known.get(status, f"http_{status}")
        verb = "failed" if status >= 500 else "was refused"
        return error_response(status, f"The request {verb} (HTTP {status}).", code)

    def process_exception(self, request, exception):
        if not is_api_path(request.path_info):
            return None
        from assistant.errors import ServiceError

        if isinstance(exception, ServiceError):
            return error_response(exception.status, exception.message, exception.code)
        if isinstance(exception, Http404):
            return error_response(404, str(exception) or "Not found.", "not_found")
        if isinstance(exception, PermissionDenied):
            return error_response(403, str(exception) or "Forbidden.", "forbidden")
        if isinstance(exception, RequestDataTooBig):
            return error_response(413, "The request body is too large.", "request_too_large")
        if isinstance(exception, SuspiciousOperation):
            return error_response(400, "The request was refused as malformed.", "bad_request")
        # Anything else goes on to the outer middleware (a lost database becomes a 503
        # there) and Django's own handling, which logs it; its HTML 500 page is then
        # rewritten to JSON by _after.
        return None
