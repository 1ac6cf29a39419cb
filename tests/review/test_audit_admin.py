"""Changes made in the Django admin are audited: who, what, which object, which fields
(names only), request id and IP, in the change's own transaction; deletes go through the
application's delete services (erasure for accounts)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts.models import ApiKey
from accounts.services import api_key_create
from assistant.models import Conversation, Message, Upload
from audit.models import AuditEvent
from policy.models import ModerationTerm
from review.models import AnswerFeedback, ReviewItem
from review.permissions import reviewers_group_ensure
from review.services import feedback_rate

from .seed import answered_conversation, flag_answer
from .test_audit import verify
from .test_retention import media_files

pytestmark = pytest.mark.django_db

User = get_user_model()
NEW_PASSWORD = "a brand new passphrase 2931"


def admin_form_data(response) -> dict:
    """What the admin's change form would post back unchanged (then edit some fields),
    hidden initial values included, as a browser sends them."""
    data = {}

    def put(key, field, value):
        if hasattr(field.widget, "widgets"):  # split date and time
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{key}_{i}"] = "" if part is None else str(part)
        elif isinstance(value, bool):
            if value:
                data[key] = "on"
        elif isinstance(value, list | tuple):
            data[key] = [str(v) for v in value]
        elif value is not None:
            data[key] = str(value)

    def add(form):
        for name, field in form.fields.items():
            value = form[name].value()
            put(form.add_prefix(name), field, value)
            if field.show_hidden_initial:  # fields with a callable default
                put(form.add_initial_prefix(name), field, value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.forms:
            add(form)
    return data


def events(action: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("seq"))


def assert_no_values(event: AuditEvent, *values: str) -> None:
    text = json.dumps(event.details)
    for value in values:
        assert value not in text, (value, event.details)


def test_policy_rule_add_change_delete_are_audited_with_field_names_only(admin_client, admin_user):
    response = admin_client.post(
        "/admin/policy/moderationterm/add/",
        {
            "term": "secretword",
            "category": "custom",
            "action": "flag",
            "enabled": "on",
            "note": "olivia asked",
        },
        headers={"X-Request-ID": "req-admin-add-1"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    term = ModerationTerm.objects.get()
    [created] = events("moderationterm.create")
    assert created.actor_id == admin_user.pk
    assert (created.object_type, created.object_id) == ("moderationterm", str(term.pk))
    assert created.request_id == "req-admin-add-1" and created.ip == "127.0.0.1"
    assert created.details["via"] == "admin"
    assert {"term", "action", "note"} <= set(created.details["fields"])
    assert_no_values(created, "secretword", "olivia")

    page = admin_client.get(f"/admin/policy/moderationterm/{term.pk}/change/")
    data = admin_form_data(page)
    # Saving without a change is no state change: nothing recorded.
    assert (
        admin_client.post(f"/admin/policy/moderationterm/{term.pk}/change/", data).status_code
        == 302
    )
    assert not events("moderationterm.update")
    data["note"] = "call +44 20 7946 0958 about it"
    del data["enabled"]  # switched off
    response = admin_client.post(f"/admin/policy/moderationterm/{term.pk}/change/", data)
    assert response.status_code == 302
    [changed] = events("moderationterm.update")
    assert changed.actor_id == admin_user.pk
    assert changed.details == {"via": "admin", "fields": ["enabled", "note"]}
    assert_no_values(changed, "7946", "call")

    response = admin_client.post(f"/admin/policy/moderationterm/{term.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ModerationTerm.objects.exists()
    [deleted] = events("moderationterm.delete")
    assert deleted.actor_id == admin_user.pk and deleted.object_id == str(term.pk)
    assert deleted.details == {"via": "admin"}

    # "Delete selected": one event per object, in one transaction with the deletes.
    terms = [ModerationTerm.objects.create(term=f"word{i}") for i in range(3)]
    response = admin_client.post(
        "/admin/policy/moderationterm/",
        {
            "action": "delete_selected",
            "_selected_action": [t.pk for t in terms],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert not ModerationTerm.objects.exists()
    bulk = events("moderationterm.delete", details__bulk=True)
    assert sorted(e.object_id for e in bulk) == sorted(str(t.pk) for t in terms)
    assert all(e.actor_id == admin_user.pk for e in bulk)
    ok, output = verify()
    assert ok, output


def test_group_membership_flags_and_password_changes_are_audited(admin_client, admin_user, owner):
    reviewers = reviewers_group_ensure()
    page = admin_client.get(f"/admin/auth/user/{owner.pk}/change/")
    assert page.status_code == 200
    data = admin_form_data(page)
    data.update(groups=[str(reviewers.pk)], is_staff="on", email="olivia@example.com")
    response = admin_client.post(f"/admin/auth/user/{owner.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    owner.refresh_from_db()
    assert owner.is_staff and owner.groups.filter(pk=reviewers.pk).exists()
    [changed] = events("user.update")
    assert changed.actor_id == admin_user.pk and changed.object_id == str(owner.pk)
    assert changed.details == {"via": "admin", "fields": ["email", "groups", "is_staff"]}
    assert_no_values(changed, "olivia", "Reviewers", str(reviewers.pk))

    data = admin_form_data(admin_client.get(f"/admin/auth/user/{owner.pk}/change/"))
    data["is_superuser"] = "on"
    assert admin_client.post(f"/admin/auth/user/{owner.pk}/change/", data).status_code == 302
    assert events("user.update")[-1].details["fields"] == ["is_superuser"]

    old_hash = User.objects.get(pk=owner.pk).password
    response = admin_client.post(
        f"/admin/auth/user/{owner.pk}/password/",
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert User.objects.get(pk=owner.pk).check_password(NEW_PASSWORD)
    [password] = events("user.password_change")
    assert password.actor_id == admin_user.pk and password.object_id == str(owner.pk)
    assert password.details == {"via": "admin", "fields": ["password"]}
    assert_no_values(password, NEW_PASSWORD, old_hash)
    # A refused password form changes nothing and records nothing.
    admin_client.post(
        f"/admin/auth/user/{owner.pk}/password/",
        {"usable_password": "true", "password1": "abc", "password2": "xyz"},
    )
    assert len(events("user.password_change")) == 1

    # Adding an account, and a group with permissions.
    response = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    [created] = events("user.create", object_id=str(newbie.pk))
    assert created.actor_id == admin_user.pk and "username" in created.details["fields"]
    assert_no_values(created, "newbie", NEW_PASSWORD)
    response = admin_client.post("/admin/auth/group/add/", {"name": "Auditors"})
    assert response.status_code == 302
    group = Group.objects.get(name="Auditors")
    assert events("group.create", object_id=str(group.pk))[0].details == {
        "via": "admin",
        "fields": ["name"],
    }
    ok, output = verify()
    assert ok, output


def test_deleting_a_user_in_the_admin_erases_the_account(
    admin_client,
    admin_user,
    owner,
    outsider,
    orders_png,
    media_root,
    django_capture_on_commit_callbacks,
):
    conversation, _, answer = answered_conversation(owner=owner, png=orders_png)
    flag_answer(answer)
    api_key_create(user=owner, name="partner")
    assert media_files(media_root)

    page = admin_client.get(f"/admin/auth/user/{owner.pk}/delete/")
    assert page.status_code == 200 and b"Cannot delete" not in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/auth/user/{owner.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=owner.pk).exists()
    for model in (Conversation, Message, Upload, ApiKey, ReviewItem):
        assert not model.objects.exists(), model
    assert media_files(media_root) == set()
    [erase] = events("user.erase")
    assert erase.actor_id == admin_user.pk and erase.object_id == str(owner.pk)
    assert erase.details["by"] == "admin" and erase.details["conversations"] == 1
    assert not events("user.delete")

    # The bulk action erases too; an administrator cannot erase themself here.
    response = admin_client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [outsider.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk=outsider.pk).exists()
    assert [e.object_id for e in events("user.erase")] == [str(owner.pk), str(outsider.pk)]
    assert (
        admin_client.post(f"/admin/auth/user/{admin_user.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    response = admin_client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [admin_user.pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert User.objects.filter(pk=admin_user.pk).exists()
    ok, output = verify()
    assert ok, output


def test_conversation_and_upload_deletes_use_the_app_services(
    admin_client, admin_user, owner, orders_png, media_root, django_capture_on_commit_callbacks
):
    conversation, _, answer = answered_conversation(owner=owner, png=orders_png)
    flag_answer(answer)  # its review item goes with the conversation
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/assistant/conversation/{conversation.pk}/delete/", {"post": "yes"}
        )
    assert response.status_code == 302
    assert not Conversation.objects.exists() and not ReviewItem.objects.exists()
    [deleted] = events("conversation.delete")
    assert deleted.actor_id == admin_user.pk and deleted.details["uploads"] == 1
    assert not Upload.objects.exists() and media_files(media_root) == set()

    # An upload on its own: row and files, recorded as upload.delete.
    other, _, _ = answered_conversation(owner=owner, png=orders_png)
    upload = Upload.objects.get()
    assert media_files(media_root)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/assistant/upload/",
            {"action": "delete_selected", "_selected_action": [str(upload.pk)], "post": "yes"},
        )
    assert response.status_code == 302
    assert not Upload.objects.exists() and media_files(media_root) == set()
    [gone] = events("upload.delete")
    assert gone.actor_id == admin_user.pk and gone.object_id == str(upload.pk)
    assert admin_client.get("/admin/assistant/upload/add/").status_code == 403

    # A title edit names the field, not the title.
    data = admin_form_data(admin_client.get(f"/admin/assistant/conversation/{other.pk}/change/"))
    data["title"] = "Olivia's tax return"
    assert (
        admin_client.post(f"/admin/assistant/conversation/{other.pk}/change/", data).status_code
        == 302
    )
    [edit] = events("conversation.update")
    assert edit.details == {"via": "admin", "fields": ["title"]}
    ok, output = verify()
    assert ok, output


def test_api_key_changes_use_the_api_key_names(admin_client, admin_user, owner):
    key, raw = api_key_create(user=owner, name="partner")
    data = admin_form_data(admin_client.get(f"/admin/accounts/apikey/{key.pk}/change/"))
    data.update(revoked_at_0="2030-01-01", revoked_at_1="10:00:00")
    assert admin_client.post(f"/admin/accounts/apikey/{key.pk}/change/", data).status_code == 302
    [revoked] = events("api_key.revoke")
    assert revoked.actor_id == admin_user.pk
    assert (revoked.object_type, revoked.object_id) == ("apikey", str(key.pk))
    assert revoked.details == {"via": "admin", "fields": ["revoked_at"]}

    data = admin_form_data(admin_client.get(f"/admin/accounts/apikey/{key.pk}/change/"))
    data["name"] = "renamed"
    admin_client.post(f"/admin/accounts/apikey/{key.pk}/change/", data)
    assert events("api_key.update")[0].details == {"via": "admin", "fields": ["name"]}
    assert (
        admin_client.post(f"/admin/accounts/apikey/{key.pk}/delete/", {"post": "yes"}).status_code
        == 302
    )
    [deleted] = events("api_key.delete")
    assert deleted.actor_id == admin_user.pk and deleted.object_id == str(key.pk)
    for event in AuditEvent.objects.all():
        assert_no_values(event, raw, key.key_hash)
    ok, output = verify()
    assert ok, output


def test_review_items_and_feedback_cannot_be_deleted_in_the_admin(admin_client, owner, flagged):
    item, _, _, answer = flagged
    feedback_rate(message=answer, acting_user=owner, rating=1)
    feedback = AnswerFeedback.objects.get()
    assert (
        admin_client.post(
            f"/admin/review/reviewitem/{item.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert (
        admin_client.post(
            f"/admin/review/answerfeedback/{feedback.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    page = admin_client.get("/admin/review/reviewitem/")
    assert "delete_selected" not in page.context["cl"].model_admin.get_actions(page.wsgi_request)
    admin_client.post(
        "/admin/review/reviewitem/",
        {"action": "delete_selected", "_selected_action": [item.pk], "post": "yes"},
    )
    assert ReviewItem.objects.filter(pk=item.pk).exists()
    assert AnswerFeedback.objects.filter(pk=feedback.pk).exists()
