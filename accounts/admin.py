from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import router, transaction

from audit.admin_mixins import AuditedAdminMixin
from audit.erasure import user_erase
from audit.services import audit_record

from .models import ApiKey

User = get_user_model()


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__username", "name")
    # The hash is useless to a human and must never be edited by hand.
    exclude = ("key_hash",)
    readonly_fields = ("prefix", "created_at", "last_used_at")
    # The names accounts/services.py uses: api_key.create, api_key.revoke.
    audit_name = "api_key"

    def audit_action(self, verb, obj=None, fields=()):
        if verb == "update" and "revoked_at" in fields and obj.revoked_at is not None:
            return "api_key.revoke"
        return super().audit_action(verb, obj, fields)


# Django's own User and Group admins, with every change audited: group membership (who
# is a reviewer), the staff and superuser flags and passwords are exactly what an audit
# of access rights asks about.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    # Erasure takes these with the account (review items of its conversations, feedback).
    audit_cascade_models = ("review.ReviewItem", "review.AnswerFeedback")

    def has_delete_permission(self, request, obj=None):
        # As on the account page: an administrator is erased by another administrator.
        if obj is not None and obj.pk == request.user.pk:
            return False
        return super().has_delete_permission(request, obj)

    def audit_delete(self, request, obj, *, bulk=False):
        # Deleting an account is the right to erasure: its conversations, uploads (files
        # included), keys, sessions and admin history go, the audit trail keeps metadata
        # only. user_erase records it (user.erase).
        if obj.pk == request.user.pk:
            raise PermissionDenied("An administrator is erased by another administrator.")
        user_erase(user=obj, acting_user=request.user)

    def user_change_password(self, request, id, form_url=""):
        if request.method != "POST":
            return super().user_change_password(request, id, form_url)
        with transaction.atomic(using=router.db_for_write(self.model)):
            user = self.get_object(request, unquote(id))
            before = user.password if user is not None else None
            response = super().user_change_password(request, id, form_url)
            if user is not None:
                user.refresh_from_db(fields=["password"])
                # Recorded when the stored hash changed (set, changed or made unusable);
                # the hash itself never goes into the trail.
                if user.password != before:
                    audit_record(
                        actor=request.user,
                        action="user.password_change",
                        obj=user,
                        details={"via": "admin", "fields": ["password"]},
                    )
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass
