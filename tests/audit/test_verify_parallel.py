"""Verification split over processes (PostgreSQL) gives exactly the report one process gives:
same counts, same problems in the same order, on a clean trail and on one an attacker with
database access tampered with in every way the single-process tests cover, all at once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from audit import sealing
from audit import services as audit
from audit import verify as verify_module
from audit.models import AuditEvent, AuditSeal
from audit.verify import verify
from tests.audit.tamper import sql

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _small_groups(settings, monkeypatch):
    settings.AUDIT_SIGNING_KEYS = {"k1": "first-signing-key"}
    settings.AUDIT_SIGNING_KEY_ID = "k1"
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    settings.AUDIT_SEAL_MAX_EVENTS = 5
    # Several groups of seals, so several children each verify a part of the trail.
    monkeypatch.setattr(verify_module, "GROUP_EVENTS", 10)
    # Earlier tests in this process may leave idle threads (the Iceberg tests' pools), which make
    # verification decline to fork (test_a_process_with_other_threads_verifies_alone): these tests
    # exercise the parallel path itself.
    monkeypatch.setattr(verify_module, "threading", SimpleNamespace(active_count=lambda: 1))


def make_events(n: int) -> list[AuditEvent]:
    return [audit.record(action="endpoint.update", actor_name=f"user{i}", target_type="endpoint",
                         target_id=str(i), details={"old": {"replicas": i}, "new": {"replicas": i + 1}})
            for i in range(n)]


def both_ways() -> tuple[dict, dict]:
    assert verify_module._processes(3) == 3, "the parallel path must be the one exercised"
    one = verify(processes=1)
    many = verify(processes=3)

    def full(report):
        return {**report.summary(), "problems": [p.as_dict() for p in report.problems],
                "truncated": report.truncated}

    return full(one), full(many)


def test_a_clean_trail_verifies_the_same_in_parallel():
    make_events(60)
    sealing.seal_pending()
    make_events(3)  # above the low-water mark, not sealed yet
    one, many = both_ways()
    assert one == many
    assert many["ok"] and many["events"] >= 60 and many["seals"] >= 12 and many["unsealed"] >= 0


def test_every_kind_of_tampering_is_reported_identically_in_parallel():
    events = make_events(60)
    seals = sealing.seal_pending()
    ids = [e.pk for e in events]
    # modified content (seal group 1), a recomputed digest (group 2), a deleted event (group 3),
    sql("UPDATE audit_auditevent SET actor_name = 'someone-else' WHERE id = %s", [ids[3]])
    forged = AuditEvent.objects.get(pk=ids[17])
    forged.details = {"old": {}, "new": {"replicas": 99}}
    sql("UPDATE audit_auditevent SET details = %s, digest = %s WHERE id = %s",
        [json.dumps(forged.details), forged.compute_digest(), ids[17]])
    sql("UPDATE audit_auditevent SET digest = %s WHERE id = %s", ["0" * 64, ids[18]])  # the column alone
    sql("DELETE FROM audit_auditevent WHERE id = %s", [ids[25]])
    # two events swapped (group 4), an altered seal and a deleted one (later groups),
    a, b = ids[31], ids[32]
    sql("UPDATE audit_auditevent SET id = %s WHERE id = %s", [-1, a])
    sql("UPDATE audit_auditevent SET id = %s WHERE id = %s", [a, b])
    sql("UPDATE audit_auditevent SET id = %s WHERE id = %s", [b, -1])
    sql("UPDATE audit_auditseal SET event_count = 3 WHERE id = %s", [seals[8].pk])
    sql("DELETE FROM audit_auditseal WHERE id = %s", [seals[10].pk])
    # and a forged event inserted below the sealed range.
    forged_id = ids[0] - 1
    sql("INSERT INTO audit_auditevent (id, occurred_at, received_at, source, actor_id, actor_name, action, "
        "target_type, target_id, target_repr, project_id, project_name, outcome, source_ip, user_agent, "
        "request_id, details, external_id, digest) VALUES (%s, %s, %s, 'console', '', 'mallory', 'grant.create', "
        "'project', '1', '', NULL, '', 'success', NULL, '', '', '{}', '', %s)",
        [forged_id, timezone.now() - timedelta(days=1), timezone.now(), "0" * 64])
    one, many = both_ways()
    assert one == many
    kinds = {p["kind"] for p in many["problems"]}
    assert kinds == {"modified", "deleted", "reordered", "seal", "inserted"}
    assert many["first_problem"] == {"kind": "inserted", "event_id": forged_id, "seal": None,
                                     "message": many["first_problem"]["message"]}
    assert AuditSeal.objects.count() == len(seals) - 1


def test_the_command_reports_the_same_verdict_in_parallel(settings):
    import io

    from django.core.management import call_command

    make_events(30)
    sealing.seal_pending()
    sql("UPDATE audit_auditevent SET actor_name = 'x' WHERE id = (SELECT MAX(id) FROM audit_auditevent)")
    verdicts = []
    for processes in (1, 2):
        settings.AUDIT_VERIFY_PROCESSES = processes
        out = io.StringIO()
        with pytest.raises(SystemExit) as exit_:
            call_command("audit_verify", "--json", "--no-record", stdout=out)
        summary = json.loads(out.getvalue())
        verdicts.append((exit_.value.code, {k: v for k, v in summary.items()
                                            if k not in ("seconds", "events_per_second")}))
    assert verdicts[0] == verdicts[1]
    assert verdicts[1][0] == 1 and verdicts[1][1]["first_problem"]["kind"] == "modified"


def test_parallel_verification_ends_even_where_sigterm_is_handled():
    import signal

    # The ingest worker's handler only sets a flag: the children must not inherit it.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        make_events(30)
        sealing.seal_pending()
        one, many = both_ways()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert one == many and many["ok"]


def test_the_database_lists_uncovered_events_as_the_python_pass_does(monkeypatch):
    events = make_events(40)
    seals = sealing.seal_pending()
    sql("DELETE FROM audit_auditseal WHERE id IN (%s, %s)", [seals[1].pk, seals[4].pk])  # gaps: inserted
    make_events(3)  # unsealed
    by_database = verify(processes=1)
    monkeypatch.setattr(verify_module, "UNCOVERED_SQL_RANGES", 0)
    by_python = verify(processes=1)
    assert by_database.summary() == by_python.summary()
    assert [p.as_dict() for p in by_database.problems] == [p.as_dict() for p in by_python.problems]
    inserted = [p.event_id for p in by_database.problems if p.kind == "inserted"]
    assert inserted == sorted(e.pk for e in events[5:10] + events[20:25])
    assert by_database.unsealed == 3


def test_a_process_with_other_threads_verifies_alone(monkeypatch):
    monkeypatch.setattr(verify_module, "threading", threading)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert verify_module._processes(3) == 1  # forking beside a running thread is not safe
    finally:
        stop.set()
        thread.join()
