from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin, ReadOnlyAdminMixin

from .models import AnswerFeedback, ReviewItem


@admin.register(ReviewItem)
class ReviewItemAdmin(AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    # Verdicts go through the review pages (/review/), which validate and audit them;
    # items and feedback go with their conversation (or by retention or erasure).
    readonly_fields = [f.name for f in ReviewItem._meta.fields]


@admin.register(AnswerFeedback)
class AnswerFeedbackAdmin(AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("message_id", "rating", "report_reason", "reported_at", "updated_at")
    list_filter = ("rating", "report_reason")
    readonly_fields = [f.name for f in AnswerFeedback._meta.fields]
