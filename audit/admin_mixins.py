"""Changes made in the Django admin go into the audit trail like every other change.

`AuditedAdminMixin` goes first in a ModelAdmin's bases. It records, in the transaction
of the change (the admin's add, change and delete views run in one; the bulk delete
action does not, so it opens one):

- add and change: `<name>.create` / `<name>.update`, with the NAMES of the fields (and
  inlines) that changed, never their values, which can hold personal data; a save that
  changed nothing is not a state change and records nothing;
- delete, single and bulk ("delete selected"): `<name>.delete`, one event per object.

`<name>` is `audit_name` (default: the model's name, e.g. "imageurlrule"). The actor is
the administrator; request id and IP come from the request (audit.middleware).

Where the application has its own delete service (it removes files, aborts answers,
erases an account), override `audit_delete` to call it: that service records its own
event, and the mixin records none of its own for the delete.
"""

from __future__ import annotations

from django.apps import apps
from django.db import router, transaction

from .services import audit_record


class AuditedAdminMixin:
    audit_name: str | None = None
    # Models ("app.Model") that this model's delete service removes with it although
    # their own admin refuses to delete them one by one (review items, feedback): the
    # delete confirmation does not ask for a permission nobody has.
    audit_cascade_models: tuple[str, ...] = ()

    # --- names ---------------------------------------------------------------------------

    def audit_prefix(self) -> str:
        return self.audit_name or self.model._meta.model_name

    def audit_action(self, verb: str, obj=None, fields=()) -> str:
        """The action for `verb` ("create", "update", "delete"); override to name special
        changes (e.g. a key whose revoked_at was set is revoked)."""
        return f"{self.audit_prefix()}.{verb}"

    def audit(self, request, verb: str, obj, *, fields=(), **details) -> None:
        fields = sorted(set(fields))
        audit_record(
            actor=request.user,
            action=self.audit_action(verb, obj, fields),
            obj=obj,
            details={"via": "admin", **({"fields": fields} if fields else {}), **details},
        )

    # --- add and change ----------------------------------------------------------------

    def save_related(self, request, form, formsets, change):
        # After save_model and the many-to-many fields and inlines: everything this save
        # wrote is known, and all of it is still in the admin's transaction.
        super().save_related(request, form, formsets, change)
        fields = list(form.changed_data)
        inlines = sorted(
            {formset.model._meta.model_name for formset in formsets if formset.has_changed()}
        )
        if change and not fields and not inlines:
            return
        extra = {"inlines": inlines} if inlines else {}
        self.audit(request, "update" if change else "create", form.instance, fields=fields, **extra)

    # --- delete --------------------------------------------------------------------------

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if self.audit_cascade_models:
            exempt = {
                str(apps.get_model(label)._meta.verbose_name) for label in self.audit_cascade_models
            }
            perms_needed = {name for name in perms_needed if str(name) not in exempt}
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        with transaction.atomic(using=router.db_for_write(self.model)):
            self.audit_delete(request, obj)

    def delete_queryset(self, request, queryset):
        # The admin's "delete selected" action runs outside any transaction: one here, so
        # the deletes and their events commit together or not at all.
        with transaction.atomic(using=router.db_for_write(self.model)):
            for obj in list(queryset):
                self.audit_delete(request, obj, bulk=True)

    def audit_delete(self, request, obj, *, bulk: bool = False) -> None:
        """Delete one object and record it. Override to call the application's own delete
        service instead (which then records its own event)."""
        ref = (type(obj).__name__.lower(), obj.pk)  # what audit_record names an instance
        obj.delete()
        # Recorded after the rows are deleted (and locked), as the app's services do: one
        # lock order everywhere, the chain head last.
        audit_record(
            actor=request.user,
            action=self.audit_action("delete", obj),
            obj=ref,
            details={"via": "admin", **({"bulk": True} if bulk else {})},
        )


class ReadOnlyAdminMixin:
    """Shown in the admin, never added, changed or deleted there (audit records; review
    items and feedback, which change only through the review pages and go with their
    conversation)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}  # no "delete selected"
