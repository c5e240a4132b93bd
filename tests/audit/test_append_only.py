"""The audit trail is append-only at the model and the database level; the one bypass
works only where documented."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit import services as audit
from audit.db import PRUNE, TEARDOWN, bypass
from audit.models import AppendOnlyError, AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(alice):
    return audit.record(action="endpoint.update", actor=alice, target=alice, details={"new": {"replicas": 2}})


def test_recorded_event_digest_survives_a_database_round_trip(event):
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.digest == event.digest
    assert stored.compute_digest() == stored.digest
    assert len(stored.digest) == 64


def test_changing_any_canonical_field_changes_the_digest(event):
    stored = AuditEvent.objects.get(pk=event.pk)
    stored.actor_name = "someone-else"
    assert stored.compute_digest() != event.digest


def test_model_refuses_update_and_delete(event):
    event.action = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "endpoint.update"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'tampered'",
        "DELETE FROM audit_auditevent",
    ],
)
def test_database_rejects_raw_update_and_delete(event, sql):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.get(pk=event.pk).action == "endpoint.update"


@pytest.mark.postgres
def test_postgres_rejects_truncate(event):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_prune_bypass_allows_delete_inside_its_block_only(event):
    with bypass(PRUNE), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert not AuditEvent.objects.filter(pk=event.pk).exists()
    other = audit.record(action="endpoint.update", actor_name="system")
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [other.pk])


def test_bypass_never_allows_update(event):
    for mode in (PRUNE, TEARDOWN):
        with pytest.raises(DatabaseError, match="append-only"):
            with bypass(mode), connection.cursor() as cursor:
                cursor.execute("UPDATE audit_auditevent SET action = 'tampered'")
    assert AuditEvent.objects.get(pk=event.pk).action == "endpoint.update"


def test_bypass_does_not_outlive_a_failed_block(event):
    with pytest.raises(RuntimeError), bypass(PRUNE):
        raise RuntimeError("boom")
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent")


def test_unknown_bypass_mode_is_refused():
    with pytest.raises(ValueError, match="unknown audit bypass mode"), bypass("anything"):
        pass


def test_deleting_the_actor_leaves_the_trail_intact(event, alice):
    alice_id = alice.pk
    alice.delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id == str(alice_id)
    assert stored.actor_name == "alice"
    assert stored.compute_digest() == stored.digest
