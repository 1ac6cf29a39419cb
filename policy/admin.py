from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin

from .models import ImageUrlRule, ModerationTerm


@admin.register(ImageUrlRule)
class ImageUrlRuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("domain", "scope", "api_key", "group", "enabled", "note", "created_at")
    list_filter = ("scope", "enabled")
    search_fields = ("domain", "note")
    autocomplete_fields = ()
    readonly_fields = ("created_by", "created_at")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ModerationTerm)
class ModerationTermAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("term", "category", "action", "enabled", "note", "created_at")
    list_filter = ("action", "category", "enabled")
    search_fields = ("term", "category", "note")
