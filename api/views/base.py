"""What every API view shares: Bearer key authentication, scopes, the per-minute rate
limit, JSON in and out, and the one error shape."""

from __future__ import annotations

import json

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from ..authentication import ApiKeyAuthentication
from ..errors import ApiError
from ..limits import rate_limit_check


class ApiJSONParser(BaseParser):
    """JSON bodies with a size limit and a clear message when they do not parse."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise ApiError(
                413,
                f"The request body is larger than {limit // (1024 * 1024)} MB.",
                "request_too_large",
            )
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(
                400, f"The request body is not valid JSON: {exc}.", "invalid_json"
            ) from None


class FirstRendererNegotiation(BaseContentNegotiation):
    """Always answer JSON (or the event stream a view builds itself): clients that send
    `Accept: text/event-stream` for a streamed request must not get a 406."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type.split(";")[0].strip().lower() == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class HasScope(BasePermission):
    def has_permission(self, request, view):
        scope = getattr(view, "required_scope", None)
        if scope and not request.auth.has_scope(scope):
            raise ApiError(
                403,
                f"This API key does not have the '{scope}' scope.",
                "missing_scope",
            )
        return True


class ApiViewMixin:
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    parser_classes = [ApiJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation
    throttle_classes = []
    required_scope: str | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        rate_limit_check(api_key=request.auth)


class ApiView(ApiViewMixin, APIView):
    """Synchronous API views (short database work)."""


class AsyncApiView(ApiViewMixin, AsyncAPIView):
    """Async API views: they wait for the engine without holding a thread."""


async def parsed_body(request) -> dict:
    """request.data, parsed off the event loop (bodies with base64 images are large)."""
    data = await sync_to_async(lambda: request.data, thread_sensitive=False)()
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_request")
    return data
