"""Reviewer pages (queue, one conversation, verdicts, export, dashboard) and the small
feedback endpoint the chat page uses.

Reviewer pages need the matching permission of the "Reviewers" group (superusers have
all); anyone else gets 403, anonymous visitors the login page. Every view of a
conversation or its screenshot is recorded in the audit trail.
"""

from __future__ import annotations

import json
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assistant import storage
from assistant.errors import ServiceError
from assistant.selectors import conversation_access, message_access
from assistant.views import json_login_required
from glimpse.api_errors import error_response

from . import selectors, services
from .metrics import dashboard_data
from .models import AnswerFeedback, ReviewItem
from .permissions import CAN_EXPORT, CAN_REVIEW, CAN_VIEW_DASHBOARD


def permission_required(perm: str):
    def decorate(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not request.user.has_perm(perm):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


# --- the queue and one item ------------------------------------------------------------------


@require_GET
@permission_required(CAN_REVIEW)
def queue(request):
    status = request.GET.get("status", "open")
    source = request.GET.get("source", "")
    label = request.GET.get("label", "")
    items = selectors.review_queue(status=status, source=source, label=label)
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "review/queue.html",
        {
            "page": page,
            "status": status,
            "source": source,
            "label": label,
            "statuses": ReviewItem.Status.choices,
            "sources": ReviewItem.Source.choices,
            "labels": ReviewItem.Label.choices,
            "can_export": request.user.has_perm(CAN_EXPORT),
            "can_dashboard": request.user.has_perm(CAN_VIEW_DASHBOARD),
        },
    )


@require_GET
@login_required
def item_detail(request, item_id):
    item = selectors.review_item_access(user=request.user, item_id=item_id)
    services.review_conversation_read(item=item, acting_user=request.user)
    turns = selectors.review_item_turns(item=item)
    return render(
        request,
        "review/item.html",
        {
            "item": item,
            "turns": turns,
            # Grounding boxes of each answer, keyed by the question whose screenshot
            # they are drawn on.
            "boxes_data": {str(t.message.pk): t.boxes for t in turns if t.message.upload_id},
            "safety_events": selectors.review_item_safety_events(item=item),
            "siblings": selectors.review_item_siblings(item=item),
            "verdicts": ReviewItem.Verdict.choices,
            "labels": ReviewItem.Label.choices,
            "pass_labels": sorted(ReviewItem.PASS_LABELS),
        },
    )


@require_POST
@login_required
def item_resolve(request, item_id):
    item = selectors.review_item_access(user=request.user, item_id=item_id)
    try:
        services.review_item_resolve(
            item=item,
            acting_user=request.user,
            verdict=request.POST.get("verdict", ""),
            label=request.POST.get("label", ""),
            comment=request.POST.get("comment", ""),
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("review:item", item_id=item.pk)
    messages.success(request, f"Review item {item.pk} resolved.")
    following = selectors.review_next_open(after=item)
    if following is not None:
        return redirect("review:item", item_id=following.pk)
    return redirect("review:queue")


@require_GET
@login_required
def item_image(request, item_id, upload_id):
    item = selectors.review_item_access(user=request.user, item_id=item_id)
    upload = selectors.review_upload_access(item=item, upload_id=upload_id)
    relative, _ = selectors.upload_review_copy(upload)
    try:
        handle = open(storage.path(relative), "rb")  # noqa: SIM115 (FileResponse closes it)
    except FileNotFoundError:
        raise Http404("The screenshot file is gone (expired?).") from None
    services.review_upload_read(item=item, upload=upload, acting_user=request.user)
    response = FileResponse(handle, content_type=upload.content_type)
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- export ---------------------------------------------------------------------------------


@require_GET
@permission_required(CAN_EXPORT)
def export(request):
    filters = {
        key: request.GET.get(key, "")
        for key in ("label", "verdict", "source")
        if request.GET.get(key)
    }
    items = selectors.review_export_items(**filters)
    services.review_export_record(
        acting_user=request.user,
        conversation_ids=list(items.values_list("conversation_id", flat=True)),
        filters=filters,
    )
    lines = (
        json.dumps(record, ensure_ascii=False) + "\n"
        for record in selectors.review_export_records(items)
    )
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="glimpse-reviews.jsonl"'
    response["Cache-Control"] = "no-store"
    return response


# --- dashboard --------------------------------------------------------------------------------


@require_GET
@permission_required(CAN_VIEW_DASHBOARD)
def dashboard(request):
    data = dashboard_data()
    return render(
        request,
        "review/dashboard.html",
        {"data": data, "totals": data["totals"], "engine": data["engine"]},
    )


@require_GET
@permission_required(CAN_VIEW_DASHBOARD)
def dashboard_json(request):
    return JsonResponse(dashboard_data())


# --- feedback from the chat page (session + CSRF, owner only) ---------------------------------


def _feedback_dict(feedback: AnswerFeedback | None, message_id: int) -> dict:
    rating = feedback.rating if feedback else None
    return {
        "message_id": message_id,
        "rating": {1: "up", -1: "down"}.get(rating),
        "reported": bool(feedback and feedback.reported_at),
    }


@require_POST
@json_login_required
def feedback(request, message_id):
    message = message_access(user=request.user, message_id=message_id)
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "The request body must be JSON.", "invalid_json")
    if not isinstance(body, dict) or not ({"rating", "report"} & body.keys()):
        return error_response(
            400, 'Send {"rating": "up"|"down"|null} or {"report": reason}.', "invalid_request"
        )
    result = None
    if "rating" in body:
        ratings = {"up": AnswerFeedback.Rating.UP, "down": AnswerFeedback.Rating.DOWN, None: None}
        if body["rating"] not in ratings:
            return error_response(400, "Rating must be up, down or null.", "invalid_rating")
        result = services.feedback_rate(
            message=message, acting_user=request.user, rating=ratings[body["rating"]]
        )
    if "report" in body:
        result = services.feedback_report(
            message=message, acting_user=request.user, reason=str(body["report"])
        )
    return JsonResponse(_feedback_dict(result, message.pk))


@require_http_methods(["GET"])
@json_login_required
def feedback_list(request, conversation_id):
    conversation = conversation_access(user=request.user, conversation_id=conversation_id)
    entries = AnswerFeedback.objects.filter(message__conversation=conversation, user=request.user)
    return JsonResponse({"feedback": [_feedback_dict(e, e.message_id) for e in entries]})
