"""Right to erasure: an account and everything it owns, in one transaction.

Deleted: conversations, their messages, review items and feedback; screenshots (rows,
and files once the transaction commits); API keys; feedback the person gave; the
account itself. Answers still being written are aborted.

Also deleted: the admin's change history about the account and its objects (its
`object_repr` can hold a username or a conversation title) and the account's sessions on
other devices.

Kept: the audit trail, which must stay verifiable, but only as metadata. Events never
held the person's name or email: `actor_id` is the account's number, which no table
resolves once the account is gone (a pseudonym). The details and IP of every event the
person caused or that is about their account are dropped now, as retention would do
later. The erasure itself is recorded with counts only, and without the IP of the
request that asked for it.
"""

from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey
from assistant import storage
from assistant.models import Conversation, Message, Upload
from inference import cache as answer_cache
from inference import client as inference_client
from review.models import AnswerFeedback, ReviewItem

from .models import AuditEvent
from .retention import audit_events_reduce, upload_files
from .services import audit_record


def user_erase(*, user, acting_user=None) -> dict:
    """Erase `user`. `acting_user` is the person asking: the user, or an administrator
    (None for an operator's command). Returns the counts that were recorded."""
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        conversations = Conversation.objects.filter(owner=user)
        messages = Message.objects.filter(conversation__owner=user)
        uploads = list(Upload.objects.filter(owner=user))
        paths = [p for upload in uploads for p in upload_files(upload)]
        counts = {
            "conversations": conversations.count(),
            "messages": messages.count(),
            "uploads": len(uploads),
            "files": len(paths),
            "api_keys": ApiKey.objects.filter(user=user).count(),
            "review_items": ReviewItem.objects.filter(conversation__owner=user).count(),
            "feedback": AnswerFeedback.objects.filter(
                Q(user=user) | Q(message__conversation__owner=user)
            ).count(),
        }
        for message_id in messages.filter(
            role=Message.Role.ASSISTANT,
            status__in=Message.UNFINISHED_STATUSES,
        ).values_list("pk", flat=True):
            transaction.on_commit(lambda pk=message_id: inference_client.abort(pk))

        about_user = AuditEvent.objects.filter(
            Q(actor_id=user.pk) | Q(object_type="user", object_id=str(user.pk))
        )
        counts["audit_reduced"] = audit_events_reduce(about_user)
        acting_self = acting_user is not None and acting_user.pk == user.pk
        audit_record(
            actor=acting_user,
            action="user.erase",
            obj=("user", user.pk),
            details={**counts, "by": "self" if acting_self else "admin"},
            record_ip=not acting_self,
        )

        _admin_history_delete(user, conversations, uploads)
        _sessions_delete(user)
        conversations.delete()  # messages, review items, feedback on them: cascade
        Upload.objects.filter(pk__in=[u.pk for u in uploads]).delete()
        ApiKey.objects.filter(user=user).delete()
        AnswerFeedback.objects.filter(user=user).delete()
        user_id = user.pk
        user.delete()
        transaction.on_commit(lambda: storage.delete(*paths))
        # Answers of theirs served from the answer cache (a shared one reaches others).
        transaction.on_commit(lambda: answer_cache.forget_owner(user_id))
    return counts


def _admin_history_delete(user, conversations, uploads) -> None:
    objects = [
        (type(user), [user.pk]),
        (Conversation, list(conversations.values_list("pk", flat=True))),
        (Upload, [u.pk for u in uploads]),
        (ApiKey, list(ApiKey.objects.filter(user=user).values_list("pk", flat=True))),
    ]
    for model, ids in objects:
        if ids:
            LogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(model),
                object_id__in=[str(pk) for pk in ids],
            ).delete()


def _sessions_delete(user) -> None:
    # Database sessions store the user id inside the signed payload: decode to find them.
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            session.delete()
