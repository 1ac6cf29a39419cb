"""The OpenAPI document and its interactive page. Public: they describe the API, they
expose no data. The Swagger UI assets come from drf-spectacular-sidecar and are served
by this server, so the page works without internet access."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


class SchemaView(SpectacularAPIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(
        operation_id="schema",
        summary="This OpenAPI 3 document (YAML; ?format=json for JSON)",
        responses={
            (200, "application/vnd.oai.openapi"): OpenApiResponse(OpenApiTypes.OBJECT),
            (200, "application/vnd.oai.openapi+json"): OpenApiResponse(OpenApiTypes.OBJECT),
        },
        auth=[],
        tags=["documentation"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DocsView(SpectacularSwaggerView):
    authentication_classes = []
    permission_classes = []
    url_name = "api_schema"

    @extend_schema(
        operation_id="docs",
        summary="Interactive API reference (Swagger UI, HTML)",
        responses={(200, "text/html"): OpenApiResponse(OpenApiTypes.STR)},
        auth=[],
        tags=["documentation"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
