import ipaddress

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Q, Subquery

from .admin_mixins import ReadOnlyAdminMixin
from .models import AuditCheckpoint, AuditEvent


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass  # the audit trail is append-only, also for superusers


class ReducedFilter(admin.SimpleListFilter):
    title = "payload"
    parameter_name = "payload"

    def lookups(self, request, model_admin):
        return [("kept", "kept"), ("reduced", "reduced by retention")]

    def queryset(self, request, queryset):
        if self.value() == "kept":
            return queryset.filter(reduced_at__isnull=True)
        if self.value() == "reduced":
            return queryset.filter(reduced_at__isnull=False)
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "ip",
        "request_id",
    )
    list_filter = ("action", "object_type", ReducedFilter, "created_at")
    date_hierarchy = "created_at"
    # "=" makes these exact matches, which the indexes answer quickly.
    search_fields = ("action",)  # shows the box; the matching is get_search_results
    search_help_text = "Exact action, object id, request id, seq, actor id or IP address."
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_per_page = 100

    def get_queryset(self, request):
        users = get_user_model().objects.filter(pk=OuterRef("actor_id"))
        return (
            super()
            .get_queryset(request)
            .annotate(actor_username=Subquery(users.values("username")[:1]))
        )

    def get_search_results(self, request, queryset, search_term):
        # Typed columns are only compared with terms of their type, so a word never turns
        # the search into a database error.
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(action=term) | Q(object_id=term) | Q(request_id=term)
        if term.isdigit():
            match |= Q(actor_id=int(term)) | Q(seq=int(term))
        try:
            match |= Q(ip=str(ipaddress.ip_address(term)))
        except ValueError:
            pass
        return queryset.filter(match), False

    @admin.display(description="actor", ordering="actor_id")
    def actor(self, event):
        if event.actor_id is None:
            return "system"
        # An erased account leaves only its number behind.
        name = getattr(event, "actor_username", None)
        return f"{name} (#{event.actor_id})" if name else f"#{event.actor_id}"


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("through_seq", "through_hash", "deleted", "created_at")
    readonly_fields = [f.name for f in AuditCheckpoint._meta.fields]
