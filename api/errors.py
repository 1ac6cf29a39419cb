"""The exception API code raises to answer with the one error shape.

`ApiError` is a DRF APIException, so DRF views turn it into a response through
glimpse.api_errors.exception_handler; the async chat views build the same response
from it with `to_response()` where DRF is not in the way (server-sent event streams).
"""

from __future__ import annotations

import math

from rest_framework.exceptions import APIException

from glimpse.api_errors import error_body, error_response


class ApiError(APIException):
    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.message = message
        self.error_code = code
        self.headers = dict(headers or {})
        if retry_after is not None:
            # Whole seconds, at least one: "Retry-After: 0" invites a busy loop.
            self.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))

    def to_response_body(self) -> dict:
        return error_body(self.status_code, self.message, self.error_code)

    def to_response(self):
        response = error_response(self.status_code, self.message, self.error_code)
        for name, value in self.headers.items():
            response[name] = value
        return response


def bad_request(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, code)


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(404, message, code)
