"""The audit trail: chained, append-only, tamper-evident, with request id and IP."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import nullcontext

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiKey
from assistant.models import Conversation
from audit.guard import AuditDetailError
from audit.models import AuditEvent, AuditImmutableError
from audit.services import audit_batch, audit_record

from ..servers import REPO

pytestmark = pytest.mark.django_db


def verify() -> tuple[bool, str]:
    out, err = _Capture(), _Capture()
    try:
        call_command("verify_audit_chain", stdout=out, stderr=err)
    except CommandError as exc:
        assert exc.returncode == 1  # what manage.py exits with
        return False, err.text
    return True, out.text


class _Capture:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def superuser_sql(sql: str, params=()) -> None:
    """What a database superuser can do: switch triggers off for the session and write.
    (SQLite has no such switch: whoever can write the file drops and recreates them.)"""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name LIKE 'audit_%%'"
            )
            triggers = cursor.fetchall()
            for name, _ in triggers:
                cursor.execute(f'DROP TRIGGER "{name}"')
            cursor.execute(sql, params)
            for _, create in triggers:
                cursor.execute(create)
            return
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def some_events(owner_client) -> list[AuditEvent]:
    owner_client.post("/accounts/keys/", {"name": "ci"})
    key = ApiKey.objects.get()
    owner_client.post(f"/accounts/keys/{key.prefix}/revoke/")
    for _ in range(3):
        owner_client.post("/conversations/")
    return list(AuditEvent.objects.order_by("seq"))


def test_changes_form_one_chain_with_request_id_and_ip(owner, owner_client):
    response = owner_client.post(
        "/accounts/keys/", {"name": "ci"}, headers={"X-Request-ID": "req-test-0001"}
    )
    assert response["X-Request-ID"] == "req-test-0001"
    created = AuditEvent.objects.get(action="api_key.create")
    assert created.request_id == "req-test-0001"
    assert created.ip == "127.0.0.1"
    assert created.actor_id == owner.pk

    key = ApiKey.objects.get()
    response = owner_client.post(f"/accounts/keys/{key.prefix}/revoke/")
    revoked = AuditEvent.objects.get(action="api_key.revoke")
    # No usable id from the client: a fresh one, echoed back.
    assert len(revoked.request_id) == 32 and response["X-Request-ID"] == revoked.request_id

    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for previous, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == previous.hash
    ok, output = verify()
    assert ok, output
    assert f"{len(events)} event(s) verified" in output


def test_client_ip_from_trusted_proxy_only(owner_client, settings):
    forwarded = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    owner_client.post("/conversations/", headers=forwarded)
    assert AuditEvent.objects.get(action="conversation.create").ip == "127.0.0.1"

    settings.TRUSTED_PROXY_COUNT = 1
    owner_client.post("/conversations/", headers=forwarded)
    # One proxy: the address it appended, not what the client claimed before it.
    assert AuditEvent.objects.filter(action="conversation.create").first().ip == "203.0.113.9"


def test_orm_refuses_every_change(owner_client):
    event = some_events(owner_client)[0]
    event.action = "changed"
    with pytest.raises(AuditImmutableError):
        event.save()
    with pytest.raises(AuditImmutableError):
        event.delete()
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.filter(pk=event.pk).update(action="changed")
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.create(seq=999, action="forged", object_type="x", object_id="1")
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.bulk_create([AuditEvent(seq=999, action="forged")])
    ok, output = verify()
    assert ok, output


def test_database_refuses_update_and_delete(owner_client):
    event = some_events(owner_client)[0]
    for sql in (
        "UPDATE audit_auditevent SET action = 'changed' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
        # Even the payload can only be dropped by the purge's controlled path.
        "UPDATE audit_auditevent SET details = '{}', ip = NULL, reduced_at = CURRENT_TIMESTAMP "
        "WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE audit_auditevent SET action = 'user.login' WHERE seq = %s", "hash does not match"),
        (
            """UPDATE audit_auditevent SET details = '{"prefix": "forged"}' WHERE seq = %s""",
            "details or ip do not match",
        ),
        (
            "UPDATE audit_auditevent SET ip = '10.9.9.9' WHERE seq = %s",
            "details or ip do not match",
        ),
        ("DELETE FROM audit_auditevent WHERE seq = %s", "missing before this one"),
    ],
    ids=["edit-action", "edit-details", "edit-ip", "delete-row"],
)
def test_chain_detects_edited_or_deleted_row(owner_client, sql, reason):
    events = some_events(owner_client)
    target = events[2]
    superuser_sql(sql, [target.seq])
    ok, output = verify()
    assert not ok
    # The first broken event: the edited one, or the one after a deleted one.
    broken = target.seq + 1 if sql.startswith("DELETE") else target.seq
    assert f"event #{broken} " in output, output
    assert reason in output, output


def test_chain_detects_rehashed_row_and_cut_tail(owner_client):
    from audit import chain
    from audit.services import chained_fields

    events = some_events(owner_client)
    # A careful forger recomputes the edited event's own hash: the next one gives it away.
    target = events[1]
    original_action, original_hash = target.action, target.hash
    target.action = "user.login"
    new_hash = chain.event_hash(target.prev_hash, chained_fields(target))
    superuser_sql(
        "UPDATE audit_auditevent SET action = %s, hash = %s WHERE seq = %s",
        [target.action, new_hash, target.seq],
    )
    ok, output = verify()
    assert not ok and f"event #{target.seq + 1} " in output and "prev_hash" in output

    # Cutting events off the end disagrees with the chain head.
    superuser_sql(
        "UPDATE audit_auditevent SET action = %s, hash = %s WHERE seq = %s",
        [original_action, original_hash, target.seq],
    )
    assert verify()[0]
    superuser_sql("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq])
    ok, output = verify()
    assert not ok and "chain head says the newest event is" in output, output


def test_details_are_redacted_and_free_text_refused(owner):
    with transaction.atomic():
        event = audit_record(
            actor=owner,
            action="test.pii",
            obj=owner,
            details={"contact": "bob@example.com", "phone": "13812345678", "count": 2},
        )
    assert event.details == {"contact": "[EMAIL]", "phone": "[PHONE]", "count": 2}
    before = AuditEvent.objects.count()
    with pytest.raises(AuditDetailError, match="not free text"):
        with transaction.atomic():
            Conversation.objects.create(owner=owner)
            audit_record(actor=owner, action="test.prose", obj=owner, details={"text": "x" * 300})
    # The change and its event rolled back together.
    assert AuditEvent.objects.count() == before and not Conversation.objects.exists()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks across connections and the operator's command need PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_append_one_after_another(owner):
    """Single records and batches (the busy paths) from four connections at once."""
    errors = []

    def writer(n):
        try:
            for i in range(8):
                with transaction.atomic(), audit_batch() if n % 2 else nullcontext():
                    audit_record(
                        actor=owner, action="test.concurrent", obj=owner, details={"n": n, "i": i}
                    )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert AuditEvent.objects.filter(action="test.concurrent").count() == 32
    # A batch writer's events keep the order they were recorded in.
    for n in (1, 3):
        order = AuditEvent.objects.filter(details__n=n).order_by("seq")
        assert [e.details["i"] for e in order] == list(range(8))

    # The real command, as an operator runs it: exit code 0, then 1 after tampering.
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**connection.settings_dict),
    }
    command = [sys.executable, "manage.py", "verify_audit_chain"]
    ok = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    with transaction.atomic():
        superuser_sql("UPDATE audit_auditevent SET object_id = '999' WHERE seq = 5")
    broken = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert "BROKEN at event #5 " in broken.stderr


def test_a_batch_writes_its_events_together_and_nothing_on_failure(owner):
    with transaction.atomic():
        audit_record(actor=owner, action="test.before", obj=owner)
    with CaptureQueriesContext(connection) as queries, transaction.atomic(), audit_batch():
        for i in range(3):
            audit_record(actor=owner, action="test.batch", obj=owner, details={"i": i})
        with audit_batch():  # nested: the outer block writes
            audit_record(actor=owner, action="test.batch", obj=owner, details={"i": 3})
        assert not AuditEvent.objects.filter(action="test.batch").exists()  # not yet
    audit_statements = [q["sql"] for q in queries.captured_queries if "audit_" in q["sql"]]
    # The head lock, one INSERT of the four events, the head update (and the check above).
    assert len(audit_statements) == 4, audit_statements
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.action for e in events] == ["test.before"] + ["test.batch"] * 4
    assert [e.details.get("i") for e in events[1:]] == [0, 1, 2, 3]
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 5))
    assert all(e.prev_hash == before.hash for before, e in zip(events, events[1:], strict=False))

    with pytest.raises(RuntimeError), transaction.atomic(), audit_batch():
        audit_record(actor=owner, action="test.failed", obj=owner)
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.filter(action="test.failed").exists()
    with transaction.atomic():
        audit_record(actor=owner, action="test.after", obj=owner)  # no batch left open
    assert AuditEvent.objects.order_by("-seq").first().action == "test.after"
    assert verify()[0]


def test_admin_search_filter_and_no_edits(admin_client, owner_client, reviewer_client):
    owner_client.post("/conversations/", headers={"X-Request-ID": "req-find-me-42"})
    event = AuditEvent.objects.get(request_id="req-find-me-42")

    page = admin_client.get("/admin/audit/auditevent/", {"q": "req-find-me-42"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    page = admin_client.get("/admin/audit/auditevent/", {"action__exact": "conversation.create"})
    assert page.context["cl"].result_count == 1
    page = admin_client.get("/admin/audit/auditevent/", {"q": "127.0.0.1"})
    assert page.context["cl"].result_count >= 1
    assert admin_client.get("/admin/audit/auditevent/", {"q": "no such thing"}).status_code == 200

    detail = admin_client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert admin_client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    # Reviewers are staff, but the audit trail is not theirs to browse.
    assert reviewer_client.get("/admin/audit/auditevent/").status_code == 403


def test_admin_reads_of_conversations_are_audited(admin_client, admin_user, flagged):
    _, conversation, _, answer = flagged
    response = admin_client.get(f"/admin/assistant/conversation/{conversation.pk}/change/")
    assert response.status_code == 200
    read = AuditEvent.objects.get(action="conversation.read")
    assert read.actor_id == admin_user.pk
    assert (read.object_type, read.object_id) == ("conversation", str(conversation.pk))
    assert read.details == {"via": "admin"}
    admin_client.get("/admin/assistant/conversation/")
    assert AuditEvent.objects.filter(action="conversation.list", actor_id=admin_user.pk).exists()
