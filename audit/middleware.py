"""Request context for the audit trail, and audited reads of conversations in the admin.

RequestContextMiddleware gives every request an id (the caller's X-Request-ID when it is
a sane token, else a fresh one; echoed back in the response) and works out the client
address, then makes both available to audit_record through audit.context.

The Django admin's pages for conversations, messages and uploads show user content, so
a successful GET of one is recorded as a read (the review pages record their own).
"""

from __future__ import annotations

import re
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from glimpse.middleware_modes import EitherModeMiddleware

from . import context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

# Admin views whose GET shows user content: url name -> what is read.
AUDITED_ADMIN_READS = {
    "assistant_conversation_change": "conversation",
    "assistant_message_change": "message",
    "assistant_upload_change": "upload",
    "assistant_conversation_changelist": "conversation",
    "assistant_message_changelist": "message",
    "assistant_upload_changelist": "upload",
}


def request_id_for(request) -> str:
    incoming = request.headers.get("X-Request-ID", "")
    return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def client_ip(request) -> str | None:
    """REMOTE_ADDR, unless TRUSTED_PROXY_COUNT proxies sit in front: then the address the
    outermost trusted proxy saw (X-Forwarded-For is only as honest as the proxy that
    appended to it, so entries left of those are the client's own claims)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [
            h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()
        ]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def _admin_read(request, response) -> tuple[str, str] | None:
    match = getattr(request, "resolver_match", None)
    if request.method != "GET" or response.status_code != 200 or match is None:
        return None
    if match.namespace != "admin" or match.url_name not in AUDITED_ADMIN_READS:
        return None
    object_type = AUDITED_ADMIN_READS[match.url_name]
    return object_type, str(match.kwargs.get("object_id", "*"))


def _record_admin_read(request, read: tuple[str, str]) -> None:
    from .services import audit_record

    object_type, object_id = read
    action = f"{object_type}.read" if object_id != "*" else f"{object_type}.list"
    with transaction.atomic():
        audit_record(
            actor=request.user,
            action=action,
            obj=(object_type, object_id),
            details={"via": "admin"},
        )


class RequestContextMiddleware(EitherModeMiddleware):
    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        token = self._activate(request)
        try:
            response = self.get_response(request)
            read = _admin_read(request, response)
            if read:
                _record_admin_read(request, read)
        finally:
            context.deactivate(token)
        response["X-Request-ID"] = request.audit_request_id
        return response

    async def _acall(self, request):
        token = self._activate(request)
        try:
            response = await self.get_response(request)
            read = _admin_read(request, response)
            if read:
                await sync_to_async(_record_admin_read)(request, read)
        finally:
            context.deactivate(token)
        response["X-Request-ID"] = request.audit_request_id
        return response

    @staticmethod
    def _activate(request):
        request.audit_request_id = request_id_for(request)
        return context.activate(
            context.RequestContext(request_id=request.audit_request_id, ip=client_ip(request))
        )
