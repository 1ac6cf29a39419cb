from django.contrib import admin

from .models import Conversation, Message, Upload


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "status", "text", "engine", "completion_tokens", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "title", "created_at", "updated_at")
    search_fields = ("title", "owner__username")
    inlines = [MessageInline]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "width", "height", "byte_size", "created_at")
    readonly_fields = [f.name for f in Upload._meta.fields]
