"""What every API view shares: Bearer key authentication, scopes, the per-minute rate
limit, JSON in and out, and the one error shape."""

from __future__ import annotations

import inspect
import json

from adrf.requests import AsyncRequest
from adrf.views import APIView as AsyncAPIView
from django.conf import settings
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from ..answers import in_worker_thread
from ..authentication import ApiKeyAuthentication
from ..errors import ApiError
from ..limits import rate_limit_check


class ApiJSONParser(BaseParser):
    """JSON bodies with a size limit and a clear message when they do not parse."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if not raw:  # no body at all: the serializer names the missing fields
            return {}
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


class BodyWithoutLengthMixin:
    """Read JSON bodies sent without Content-Length (`Transfer-Encoding: chunked`, as
    clients do when they stream a body). DRF treats a missing length as an empty body;
    the server has already gathered the body, so hand it to the parser, which reads it
    under the same size limit as any other."""

    def _load_stream(self):
        super()._load_stream()
        meta = self._request.META
        if (
            self._stream is None
            and not meta.get("CONTENT_LENGTH")
            and not meta.get("HTTP_CONTENT_LENGTH")
            and self.content_type.split(";")[0].strip().lower() == ApiJSONParser.media_type
            and not self._request._read_started
        ):
            self._stream = self._request


class ApiRequest(BodyWithoutLengthMixin, Request):
    pass


class AsyncApiRequest(BodyWithoutLengthMixin, AsyncRequest):
    pass


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
    request_class: type[Request] = ApiRequest

    def initialize_request(self, request, *args, **kwargs):
        return self.request_class(
            request,
            parsers=self.get_parsers(),
            authenticators=self.get_authenticators(),
            negotiator=self.get_content_negotiator(),
            parser_context=self.get_parser_context(request),
        )

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        rate_limit_check(api_key=request.auth)


class ApiView(ApiViewMixin, APIView):
    """Synchronous API views (short database work)."""


class AsyncApiView(ApiViewMixin, AsyncAPIView):
    """Async API views: they wait for the engine without holding a thread."""

    request_class = AsyncApiRequest

    async def async_dispatch(self, request, *args, **kwargs):
        """adrf's dispatch, except for one step: authentication, the rate limit and the
        body parse run together in one pool-thread hop. adrf runs `initial` alone
        through a thread-sensitive hop (a new thread for each request, and one such step
        at a time per process), and the body parse needed a hop of its own."""
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            await in_worker_thread(self._initial_and_body)(request, *args, **kwargs)
            method = request.method.lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            response = (handler or self.http_method_not_allowed)(request, *args, **kwargs)
            if inspect.isawaitable(response):  # OPTIONS and 405 are answered synchronously
                response = await response
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def _initial_and_body(self, request, *args, **kwargs) -> None:
        self.initial(request, *args, **kwargs)
        if request.method in ("POST", "PUT", "PATCH"):
            request.data  # noqa: B018  parsed here, off the event loop (bodies with images are large)


def json_object(request) -> dict:
    """The request body, which must be a JSON object (async views parse it in
    `_initial_and_body`)."""
    data = request.data
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_request")
    return data
