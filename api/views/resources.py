"""Conversations, their messages and uploaded images: list (paginated, filterable by
date), read, delete; upload. Only the key owner's objects exist for a request: anyone
else's are a 404, like ids that were never used."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.http import FileResponse
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from assistant import services as assistant_services
from assistant import storage
from assistant.errors import ServiceError
from assistant.models import Conversation, Message, Upload
from assistant.safety.pipeline import upload_refused_record
from assistant.selectors import conversation_access, message_access, upload_access

from ..errors import ApiError
from ..serializers import (
    ConversationSerializer,
    ErrorSerializer,
    MessageSerializer,
    UploadCreateSerializer,
    UploadSerializer,
)
from ..services import api_conversation_delete, message_exchange_delete, upload_delete
from .base import ApiView

DATE_FILTERS = [
    OpenApiParameter(
        "created_after",
        OpenApiTypes.DATETIME,
        description="Only objects created at or after this ISO 8601 date or date-time (UTC if no offset).",
    ),
    OpenApiParameter(
        "created_before",
        OpenApiTypes.DATETIME,
        description="Only objects created before this ISO 8601 date or date-time.",
    ),
]
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object (or not yours).")


class NewestFirst(CursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "-created_at"


class OldestFirst(NewestFirst):
    ordering = "created_at"


def _instant(name: str, raw: str) -> dt.datetime:
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            if day is not None:
                value = dt.datetime.combine(day, dt.time.min)
    except ValueError:
        value = None
    if value is None:
        raise ApiError(
            400, f"{name} must be an ISO 8601 date or date-time, e.g. 2025-01-31T12:00:00Z.",
            "invalid_filter",
        )  # fmt: skip
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def filter_by_date(queryset, request):
    if raw := request.query_params.get("created_after"):
        queryset = queryset.filter(created_at__gte=_instant("created_after", raw))
    if raw := request.query_params.get("created_before"):
        queryset = queryset.filter(created_at__lt=_instant("created_before", raw))
    return queryset


def paginated(view, request, queryset, serializer_class, paginator_class):
    paginator = paginator_class()
    page = paginator.paginate_queryset(filter_by_date(queryset, request), request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


# --- conversations --------------------------------------------------------------------------


class ConversationListView(ApiView):
    required_scope = "conversations"
    # Pagination is applied by hand in get(); drf-spectacular reads the class from here.
    pagination_class = NewestFirst

    @extend_schema(
        operation_id="conversations_list",
        summary="List conversations",
        parameters=DATE_FILTERS,
        responses={200: ConversationSerializer(many=True)},
        tags=["conversations"],
    )
    def get(self, request):
        conversations = Conversation.objects.filter(owner=request.user).select_related("api_origin")
        return paginated(self, request, conversations, ConversationSerializer, NewestFirst)


class ConversationDetailView(ApiView):
    required_scope = "conversations"

    @extend_schema(
        operation_id="conversations_retrieve",
        summary="Read a conversation",
        responses={200: ConversationSerializer, 404: NOT_FOUND},
        tags=["conversations"],
    )
    def get(self, request, conversation_id: int):
        conversation = conversation_access(user=request.user, conversation_id=conversation_id)
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(
        operation_id="conversations_destroy",
        summary="Delete a conversation, its messages and the images only it used",
        responses={204: None, 404: NOT_FOUND},
        tags=["conversations"],
    )
    def delete(self, request, conversation_id: int):
        conversation = conversation_access(user=request.user, conversation_id=conversation_id)
        api_conversation_delete(conversation=conversation, acting_user=request.user)
        return Response(status=204)


class MessageListView(ApiView):
    required_scope = "conversations"
    pagination_class = OldestFirst

    @extend_schema(
        operation_id="messages_list",
        summary="List a conversation's messages, oldest first",
        parameters=DATE_FILTERS,
        responses={200: MessageSerializer(many=True), 404: NOT_FOUND},
        tags=["conversations"],
    )
    def get(self, request, conversation_id: int):
        conversation = conversation_access(user=request.user, conversation_id=conversation_id)
        return paginated(self, request, conversation.messages.all(), MessageSerializer, OldestFirst)


class MessageDetailView(ApiView):
    required_scope = "conversations"

    def _message(self, request, conversation_id, message_id) -> Message:
        message = message_access(user=request.user, message_id=message_id)
        if message.conversation_id != conversation_id:
            raise ApiError(404, "No such message.", "not_found")
        return message

    @extend_schema(
        operation_id="messages_retrieve",
        summary="Read a message",
        responses={200: MessageSerializer, 404: NOT_FOUND},
        tags=["conversations"],
    )
    def get(self, request, conversation_id: int, message_id: int):
        return Response(MessageSerializer(self._message(request, conversation_id, message_id)).data)

    @extend_schema(
        operation_id="messages_destroy",
        summary="Delete a question together with its answer",
        responses={204: None, 404: NOT_FOUND, 409: ErrorSerializer},
        tags=["conversations"],
    )
    def delete(self, request, conversation_id: int, message_id: int):
        message = self._message(request, conversation_id, message_id)
        message_exchange_delete(message=message, acting_user=request.user)
        return Response(status=204)


# --- uploads -----------------------------------------------------------------------------------


class UploadListView(ApiView):
    required_scope = "uploads"
    pagination_class = NewestFirst

    def get_parsers(self):
        # Multipart for the upload itself; GET has no body.
        return [MultiPartParser()]

    @extend_schema(
        operation_id="uploads_list",
        summary="List uploaded images",
        parameters=DATE_FILTERS,
        responses={200: UploadSerializer(many=True)},
        tags=["uploads"],
    )
    def get(self, request):
        return paginated(
            self, request, Upload.objects.filter(owner=request.user), UploadSerializer, NewestFirst
        )

    @extend_schema(
        operation_id="uploads_create",
        summary="Upload an image to ask about later",
        request={"multipart/form-data": UploadCreateSerializer},
        responses={
            201: UploadSerializer,
            400: ErrorSerializer,
            413: ErrorSerializer,
            415: ErrorSerializer,
        },
        tags=["uploads"],
    )
    def post(self, request):
        file = request.FILES.get("image")
        if file is None:
            raise ApiError(
                400, "Send the image as the multipart form field 'image'.", "no_file"
            )  # fmt: skip
        if file.size > settings.UPLOAD_MAX_BYTES:
            limit = settings.UPLOAD_MAX_BYTES // (1024 * 1024)
            upload_refused_record(actor=request.user, code="too_large", api_key=request.auth)
            raise ApiError(413, f"The image is larger than {limit} MB.", "too_large")
        try:
            upload = assistant_services.upload_create(owner=request.user, data=file.read())
        except ServiceError as exc:
            if exc.status < 500:  # refused for what the file is (reason only, no content)
                upload_refused_record(actor=request.user, code=exc.code, api_key=request.auth)
            raise ApiError(exc.status, exc.message, exc.code) from None
        return Response(UploadSerializer(upload).data, status=201)


class UploadDetailView(ApiView):
    required_scope = "uploads"

    @extend_schema(
        operation_id="uploads_retrieve",
        summary="Describe an uploaded image",
        responses={200: UploadSerializer, 404: NOT_FOUND},
        tags=["uploads"],
    )
    def get(self, request, upload_id):
        return Response(
            UploadSerializer(upload_access(user=request.user, upload_id=upload_id)).data
        )

    @extend_schema(
        operation_id="uploads_destroy",
        summary="Delete an uploaded image",
        responses={204: None, 404: NOT_FOUND},
        tags=["uploads"],
    )
    def delete(self, request, upload_id):
        upload = upload_access(user=request.user, upload_id=upload_id)
        upload_delete(upload=upload, acting_user=request.user)
        return Response(status=204)


class UploadContentView(ApiView):
    required_scope = "uploads"

    @extend_schema(
        operation_id="uploads_content",
        summary="Download an uploaded image (sanitised, metadata stripped)",
        responses={
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The image."),
            404: NOT_FOUND,
        },
        tags=["uploads"],
    )
    def get(self, request, upload_id):
        upload = upload_access(user=request.user, upload_id=upload_id)
        response = FileResponse(
            open(storage.path(upload.original), "rb"),  # noqa: SIM115 (closed by Django)
            content_type=upload.content_type,
        )
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response
