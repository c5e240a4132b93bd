"""Retention: sealed events are archived to day-partitioned Iceberg tables, pruned only when
sealed AND archived AND old, and the pruned range still verifies against its seals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import retention, sealing
from audit import services as audit
from audit.models import AuditEvent, AuditSealArchive
from audit.verify import verify
from tests.audit.tamper import sql

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _archive(settings, tmp_path):
    settings.AUDIT_ARCHIVE_CATALOG_URI = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    settings.AUDIT_ARCHIVE_WAREHOUSE = str(tmp_path / "warehouse")
    settings.AUDIT_ARCHIVE_NAMESPACE = "test_audit"
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    settings.AUDIT_SEAL_MAX_EVENTS = 5
    settings.AUDIT_RETENTION_DAYS = 30


def old_and_new_events():
    now = timezone.now()
    old = [audit.record(action="endpoint.update", actor_name="alice", occurred_at=now - timedelta(days=40 + i),
                        details={"new": {"replicas": i}}) for i in range(10)]
    new = [audit.record(action="endpoint.update", actor_name="bob", occurred_at=now - timedelta(days=1))
           for _ in range(3)]
    return old, new


def test_archive_is_a_day_partitioned_iceberg_table_readable_by_pyiceberg(tmp_path):
    old, new = old_and_new_events()
    sealing.seal_pending()
    assert retention.archive_sealed() == 3
    table = retention.table()
    assert [f.name for f in table.spec().fields] == ["occurred_day"]
    assert str(table.spec().fields[0].transform) == "day"
    rows = table.scan().to_arrow()
    assert rows.num_rows == 13
    assert set(rows.column("actor_name").to_pylist()) == {"alice", "bob"}
    assert AuditSealArchive.objects.count() == 3
    # Parquet data files under the warehouse path, one folder per day.
    files = list((tmp_path / "warehouse").rglob("*.parquet"))
    assert files and any("occurred_day=" in str(f) for f in files)
    # Archiving again writes nothing twice.
    assert retention.archive_sealed() == 0
    assert retention.table().scan().to_arrow().num_rows == 13


def test_unsealed_or_unarchived_events_are_never_pruned():
    old, new = old_and_new_events()
    assert retention.prune_archived() == 0  # nothing sealed
    sealing.seal_pending()
    assert retention.prune_archived() == 0  # sealed, not archived
    assert AuditEvent.objects.filter(actor_name="alice").count() == 10


def test_prune_deletes_only_whole_old_seals_and_the_range_still_verifies():
    old, new = old_and_new_events()
    sealing.seal_pending()
    result = retention.archive_and_prune()
    # Seals 1 and 2 hold only old events; seal 3 has the newest ones.
    assert result["archived_seals"] == 3 and result["pruned_events"] == 10
    assert not AuditEvent.objects.filter(actor_name="alice").exists()
    assert AuditEvent.objects.filter(actor_name="bob").count() == 3
    prune = AuditEvent.objects.get(action="audit.prune")
    assert prune.details["events"] == 10
    sealing.seal_pending()
    report = verify()
    assert report.ok, report.summary()
    assert report.archived_events == 10


def test_tampering_with_the_archive_is_detected_after_pruning(settings):
    old, new = old_and_new_events()
    sealing.seal_pending()
    retention.archive_and_prune()
    # Rewrite the archived table without one row: its event is then missing for its seal.
    table = retention.table()
    from pyiceberg.expressions import EqualTo

    table.delete(EqualTo("id", old[3].pk))
    problem = verify().first
    assert (problem.kind, problem.event_id) == ("deleted", old[3].pk)


def test_retention_zero_keeps_everything(settings):
    settings.AUDIT_RETENTION_DAYS = 0
    old_and_new_events()
    sealing.seal_pending()
    retention.archive_and_prune()
    assert AuditEvent.objects.filter(actor_name="alice").count() == 10


def test_deleting_a_sealed_but_unpruned_event_is_still_reported_even_when_archived():
    old, new = old_and_new_events()
    sealing.seal_pending()
    retention.archive_sealed()
    sql("DELETE FROM audit_auditevent WHERE id = %s", [new[0].pk])
    problem = verify().first
    assert (problem.kind, problem.event_id) == ("deleted", new[0].pk)
