"""One JSON error shape for every API response: {"error": {"type", "message", "code"}}."""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework.views import exception_handler as drf_exception_handler

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


def error_body(status: int, message: str, code: str) -> dict:
    return {"error": {"type": _TYPES.get(status, "api_error"), "message": message, "code": code}}


def error_response(status: int, message: str, code: str, **headers) -> JsonResponse:
    response = JsonResponse(error_body(status, message, code), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data.get("detail") if isinstance(response.data, dict) else None
    message = str(detail) if detail else "The request was not valid."
    code = getattr(detail, "code", None) or "invalid_request"
    response.data = error_body(response.status_code, message, str(code))
    return response
