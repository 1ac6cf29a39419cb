from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin

from .models import Conversation, Message, Upload


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "status", "text", "engine", "completion_tokens", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("id", "owner", "title", "created_at", "updated_at")
    search_fields = ("title", "owner__username")
    inlines = [MessageInline]
    audit_cascade_models = ("review.ReviewItem", "review.AnswerFeedback")

    def audit_delete(self, request, obj, *, bulk=False):
        # The app's own delete: aborts answers still being written, removes screenshots
        # no other conversation uses (files too, on commit), records conversation.delete.
        from .services import conversation_delete

        conversation_delete(conversation=obj, acting_user=request.user)


@admin.register(Upload)
class UploadAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("id", "owner", "width", "height", "byte_size", "created_at")
    readonly_fields = [f.name for f in Upload._meta.fields]

    def has_add_permission(self, request):
        # Screenshots come in through the screening pipeline (upload_create) only: a row
        # made here would have no files and no safety checks.
        return False

    def audit_delete(self, request, obj, *, bulk=False):
        # The app's own delete: the row, then its files once the transaction commits;
        # records upload.delete.
        from api.services import upload_delete

        upload_delete(upload=obj, acting_user=request.user)
