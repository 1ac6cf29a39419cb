"""The chat page and the small JSON endpoints its script uses (session + CSRF)."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from glimpse.api_errors import error_response

from . import services, storage
from .errors import ServiceError
from .safety.pipeline import upload_refused_record
from .selectors import (
    conversation_access,
    conversation_list,
    conversation_messages,
    message_to_dict,
    upload_access,
)


def json_login_required(view):
    """Like login_required, but answers scripts with a JSON 401 instead of a redirect,
    and service refusals as the one JSON error shape."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return error_response(401, "Please sign in again.", "not_authenticated")
        try:
            return view(request, *args, **kwargs)
        except ServiceError as exc:
            return error_response(exc.status, exc.message, exc.code)
        except Http404 as exc:
            return error_response(404, str(exc) or "Not found.", "not_found")

    return wrapper


@login_required
def chat(request, conversation_id=None):
    conversations = list(conversation_list(user=request.user)[:100])
    current = None
    messages = []
    if conversation_id is not None:
        current = conversation_access(user=request.user, conversation_id=conversation_id)
        messages = [message_to_dict(m) for m in conversation_messages(conversation=current)]
    return render(
        request,
        "assistant/chat.html",
        {"conversations": conversations, "current": current, "messages_data": messages},
    )


@require_POST
@json_login_required
def conversation_create(request):
    conversation = services.conversation_create(owner=request.user)
    return JsonResponse({"id": conversation.pk, "url": f"/c/{conversation.pk}/"}, status=201)


@require_POST
@login_required
def conversation_delete(request, conversation_id):
    conversation = conversation_access(user=request.user, conversation_id=conversation_id)
    services.conversation_delete(conversation=conversation, acting_user=request.user)
    return redirect("chat")


@require_GET
@json_login_required
def conversation_messages_view(request, conversation_id):
    conversation = conversation_access(user=request.user, conversation_id=conversation_id)
    return JsonResponse(
        {"messages": [message_to_dict(m) for m in conversation_messages(conversation=conversation)]}
    )


@require_POST
@json_login_required
def upload_create(request):
    limit = settings.UPLOAD_MAX_BYTES
    too_large = f"The screenshot is larger than {limit // (1024 * 1024)} MB."
    # Refuse on the declared length before Django parses (and spools) a huge body.
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
        return _upload_refused(request, 413, too_large, "too_large")
    file = request.FILES.get("image")
    if file is not None and file.size > limit:
        return _upload_refused(request, 413, too_large, "too_large")
    if file is None:
        return error_response(400, "Choose a screenshot to upload.", "no_file")
    try:
        upload = services.upload_create(owner=request.user, data=file.read())
    except ServiceError as exc:
        if exc.status < 500:  # refused for what the file is, not for a fault of ours
            upload_refused_record(actor=request.user, code=exc.code)
        raise
    return JsonResponse(
        {
            "id": str(upload.pk),
            "width": upload.width,
            "height": upload.height,
            "url": f"/uploads/{upload.pk}/image",
        },
        status=201,
    )


def _upload_refused(request, status: int, message: str, code: str):
    # The reason only: never the file, its name or its declared type.
    upload_refused_record(actor=request.user, code=code)
    return error_response(status, message, code)


@require_GET
@login_required
def upload_image(request, upload_id):
    upload = upload_access(user=request.user, upload_id=upload_id)
    response = FileResponse(
        open(storage.path(upload.original), "rb"), content_type=upload.content_type
    )
    response["Cache-Control"] = "private, max-age=3600"
    # Even a hostile file could not run as a page: no scripts, no sniffing.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
