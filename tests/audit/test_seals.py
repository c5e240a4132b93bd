"""Seals and verification: a clean trail verifies (across key rotation, out-of-order commits
and a pruned-and-archived range); each kind of tampering is named exactly."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from audit import sealing
from audit import services as audit
from audit.models import AuditEvent, AuditSeal
from audit.verify import verify
from tests.audit.tamper import sql, triggers_dropped

pytestmark = pytest.mark.django_db

KEYS = {"k1": "first-signing-key"}


@pytest.fixture(autouse=True)
def _keys(settings):
    settings.AUDIT_SIGNING_KEYS = dict(KEYS)
    settings.AUDIT_SIGNING_KEY_ID = "k1"
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    settings.AUDIT_SEAL_MAX_EVENTS = 4


def make_events(n: int, **fields) -> list[AuditEvent]:
    return [audit.record(action="endpoint.update", actor_name=f"user{i}", target_type="endpoint",
                         target_id=str(i), details={"old": {"replicas": i}, "new": {"replicas": i + 1}}, **fields)
            for i in range(n)]


def run_verify() -> tuple[int, dict, str]:
    out = io.StringIO()
    code = 0
    try:
        call_command("audit_verify", "--json", "--no-record", stdout=out)
    except SystemExit as exc:
        code = exc.code
    text = out.getvalue()
    return code, json.loads(text), text


def first_problem() -> dict:
    code, summary, _ = run_verify()
    assert code == 1
    return summary["first_problem"]


def test_sealer_groups_events_and_chains_signed_seals():
    events = make_events(10)
    seals = sealing.seal_pending()
    assert [s.event_count for s in seals] == [4, 4, 2]
    assert [s.sequence for s in seals] == [1, 2, 3]
    assert seals[0].previous_hash == "" and seals[1].previous_hash == seals[0].seal_hash
    assert all(s.key_id == "k1" for s in seals)
    assert sealing.expand(seals[0].ranges) == [e.pk for e in events[:4]]
    assert sealing.seal_pending() == []  # nothing new
    code, summary, _ = run_verify()
    assert code == 0 and summary["ok"] and summary["events"] == 10 and summary["seals"] == 3


def test_clean_trail_verifies_and_the_command_says_so():
    make_events(3)
    sealing.seal_pending()
    make_events(2)  # not sealed yet: waiting, not a failure
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "OK: the audit trail verifies" in out.getvalue()
    assert "unsealed (waiting for the sealer): 2" in out.getvalue()
    assert re.search(r"Checked 3 events in [\d.]+ s \(\d+ events/s\)", out.getvalue())
    assert run_verify()[1]["events_per_second"] > 0
    assert AuditEvent.objects.filter(action="audit.verify", outcome="success").exists()


def test_seal_table_is_append_only():
    make_events(1)
    sealing.seal_pending()
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditseal SET key_id = 'x'")
    from audit.db import PRUNE, bypass

    with pytest.raises(DatabaseError, match="append-only"):
        with bypass(PRUNE), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditseal")


def test_changed_field_is_named():
    events = make_events(6)
    sealing.seal_pending()
    target = events[4]
    sql("UPDATE audit_auditevent SET actor_name = 'someone-else' WHERE id = %s", [target.pk])
    problem = first_problem()
    assert problem["kind"] == "modified" and problem["event_id"] == target.pk
    assert f"event {target.pk} was modified" in problem["message"]


def test_changed_field_with_recomputed_digest_is_still_named():
    events = make_events(6)
    sealing.seal_pending()
    target = events[2]
    forged = AuditEvent.objects.get(pk=target.pk)
    forged.details = {"old": {"replicas": 2}, "new": {"replicas": 99}}
    sql("UPDATE audit_auditevent SET details = %s, digest = %s WHERE id = %s",
        [json.dumps(forged.details), forged.compute_digest(), target.pk])
    problem = first_problem()
    assert (problem["kind"], problem["event_id"]) == ("modified", target.pk)


def test_deleted_event_is_named():
    events = make_events(6)
    sealing.seal_pending()
    sql("DELETE FROM audit_auditevent WHERE id = %s", [events[3].pk])
    problem = first_problem()
    assert (problem["kind"], problem["event_id"]) == ("deleted", events[3].pk)


def test_inserted_forged_event_is_named():
    events = make_events(6)
    sealing.seal_pending()
    forged_id = events[0].pk - 1  # below the sealed range, where no event may appear any more
    forged = AuditEvent(id=forged_id, occurred_at=timezone.now() - timedelta(days=1), action="grant.create",
                        actor_name="mallory", target_type="project", target_id="1")
    forged.digest = forged.compute_digest()
    sql("INSERT INTO audit_auditevent (id, occurred_at, received_at, source, actor_id, actor_name, action, "
        "target_type, target_id, target_repr, project_id, project_name, outcome, source_ip, user_agent, "
        "request_id, details, external_id, digest) VALUES (%s, %s, %s, 'console', '', 'mallory', 'grant.create', "
        "'project', '1', '', NULL, '', 'success', NULL, '', '', '{}', '', %s)",
        [forged_id, forged.occurred_at, timezone.now(), forged.digest])
    problem = first_problem()
    assert (problem["kind"], problem["event_id"]) == ("inserted", forged_id)


def test_swapped_events_are_named_as_reordered():
    events = make_events(6)
    sealing.seal_pending()
    a, b = events[1].pk, events[2].pk
    sql("UPDATE audit_auditevent SET id = %s WHERE id = %s", [-1, a])
    sql("UPDATE audit_auditevent SET id = %s WHERE id = %s", [a, b])
    sql("UPDATE audit_auditevent SET id = %s WHERE id = %s", [b, -1])
    problem = first_problem()
    assert problem["kind"] == "reordered" and problem["event_id"] == a
    assert f"events {a} and {b} were swapped" in problem["message"]


def test_altered_seal_is_named():
    make_events(8)
    seals = sealing.seal_pending()
    sql("UPDATE audit_auditseal SET event_count = 3 WHERE id = %s", [seals[1].pk])
    problem = first_problem()
    assert problem["kind"] == "seal" and problem["seal"] == 2


def test_forged_seal_with_a_consistent_hash_fails_its_signature():
    events = make_events(4)
    sealing.seal_pending()
    seal = AuditSeal.objects.get()
    # Re-seal a modified event with a recomputed hash but without the key.
    sql("UPDATE audit_auditevent SET actor_name = 'x' WHERE id = %s", [events[0].pk])
    seal.fingerprints = sealing.fingerprint(AuditEvent.objects.get(pk=events[0].pk).compute_digest()) + seal.fingerprints[16:]
    seal.seal_hash = sealing.compute_seal_hash(seal)
    sql("UPDATE audit_auditseal SET fingerprints = %s, seal_hash = %s WHERE id = %s",
        [seal.fingerprints, seal.seal_hash, seal.pk])
    report = verify()
    assert any("wrong signature" in p.message for p in report.problems)


def test_deleted_seal_breaks_the_chain():
    make_events(12)
    seals = sealing.seal_pending()
    sql("DELETE FROM audit_auditseal WHERE id = %s", [seals[1].pk])
    report = verify()
    messages = [p.message for p in report.problems]
    assert "seal 2 is missing (next is seal 3)" in messages
    # Its events are now covered by no seal: inserted as far as the trail can tell.
    assert {p.kind for p in report.problems} == {"seal", "inserted"}


def test_key_rotation_keeps_old_seals_verifiable(settings):
    make_events(5)
    sealing.seal_pending()
    settings.AUDIT_SIGNING_KEYS = {"k1": KEYS["k1"], "k2": "second-signing-key"}
    settings.AUDIT_SIGNING_KEY_ID = "k2"
    make_events(3)
    new = sealing.seal_pending()
    assert {s.key_id for s in new} == {"k2"}
    assert verify().ok
    # Dropping the retired key makes its seals unverifiable, and says which key is missing.
    settings.AUDIT_SIGNING_KEYS = {"k2": "second-signing-key"}
    report = verify()
    assert not report.ok
    assert "signed with key 'k1', which is not configured" in report.first.message
    # The wrong key for an id fails as a wrong signature.
    settings.AUDIT_SIGNING_KEYS = {"k1": "guessed", "k2": "second-signing-key"}
    assert "wrong signature" in verify().first.message


def test_out_of_order_commit_is_sealed_later_and_verifies(settings):
    events = make_events(3)
    base = events[-1].pk
    assert sealing.seal_pending()[-1].floor == base
    settings.AUDIT_SEAL_GRACE_SECONDS = 3600
    # Id base+1 belongs to a transaction still open; base+2 committed first.
    later = AuditEvent(id=base + 2, occurred_at=timezone.now(), action="endpoint.update", actor_name="b")
    later.save(force_insert=True)
    first_run = sealing.seal_pending()
    assert first_run[-1].floor == base  # not past the gap: base+1 may still commit
    assert sealing.unsealed_count() == 0
    late = AuditEvent(id=base + 1, occurred_at=timezone.now(), action="endpoint.update", actor_name="a")
    late.save(force_insert=True)
    # The late committer has a lower id than the newest sealed event and still waits for the
    # sealer: counted (the auditor's home page shows this number).
    assert sealing.unsealed_count() == verify().unsealed == 1
    AuditEvent(id=base + 3, occurred_at=timezone.now(), action="endpoint.update", actor_name="c").save(force_insert=True)
    assert sealing.unsealed_count() == 2
    second_run = sealing.seal_pending()
    assert sealing.expand(second_run[0].ranges) == [base + 1, base + 3]
    assert second_run[0].floor == base + 3
    report = verify()
    assert report.ok and report.unsealed == 0 and report.events == 6
    assert sealing.unsealed_count() == 0


def test_event_appearing_in_a_permanent_gap_is_reported_as_inserted(settings):
    events = make_events(3)
    base = events[-1].pk
    AuditEvent(id=base + 2, occurred_at=timezone.now(), action="x", actor_name="b").save(force_insert=True)
    with override_settings(AUDIT_SEAL_GRACE_SECONDS=0):
        assert sealing.seal_pending()[-1].floor == base + 2
    AuditEvent(id=base + 1, occurred_at=timezone.now(), action="x", actor_name="late").save(force_insert=True)
    assert sealing.seal_pending() == []
    problem = verify().first
    assert (problem.kind, problem.event_id) == ("inserted", base + 1)


def test_verify_with_triggers_restored_after_tampering():
    make_events(1)
    with triggers_dropped():
        pass
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent")
