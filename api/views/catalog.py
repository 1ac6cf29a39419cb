"""GET /v1/models: the OpenAI-compatible model list (one model: the configured engine)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from ..catalog import served_models
from ..errors import ApiError
from ..serializers import ErrorSerializer, ModelListSerializer, ModelSerializer
from .base import ApiView


class ModelListView(ApiView):
    @extend_schema(
        operation_id="models_list",
        summary="List models",
        responses={200: ModelListSerializer, 401: ErrorSerializer},
        tags=["models"],
    )
    def get(self, request):
        return Response({"object": "list", "data": served_models()})


class ModelDetailView(ApiView):
    @extend_schema(
        operation_id="models_retrieve",
        summary="Describe a model",
        responses={200: ModelSerializer, 404: OpenApiResponse(ErrorSerializer)},
        tags=["models"],
    )
    def get(self, request, model_id: str):
        for model in served_models():
            if model["id"] == model_id:
                return Response(model)
        raise ApiError(404, f"Unknown model {model_id!r}.", "model_not_found")
