from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin

from .models import AnswerFeedback, ReviewItem


@admin.register(ReviewItem)
class ReviewItemAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "source",
        "reason",
        "status",
        "verdict",
        "label",
        "conversation_id",
        "created_at",
        "resolved_at",
    )
    list_filter = ("status", "source", "verdict", "label", "created_at")
    search_fields = ("=id", "=conversation__id", "reason")
    date_hierarchy = "created_at"
    # Verdicts go through the review pages (/review/), which validate and audit them.
    readonly_fields = [f.name for f in ReviewItem._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Review items and feedback go with their conversation (or by retention/erasure),
        # never one by one in the admin.
        return False


@admin.register(AnswerFeedback)
class AnswerFeedbackAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("message_id", "rating", "report_reason", "reported_at", "updated_at")
    list_filter = ("rating", "report_reason")
    readonly_fields = [f.name for f in AnswerFeedback._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Review items and feedback go with their conversation (or by retention/erasure),
        # never one by one in the admin.
        return False
