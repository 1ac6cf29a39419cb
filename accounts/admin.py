from django.contrib import admin

from .models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__username", "name")
    # The hash is useless to a human and must never be edited by hand.
    exclude = ("key_hash",)
    readonly_fields = ("prefix", "created_at", "last_used_at")
