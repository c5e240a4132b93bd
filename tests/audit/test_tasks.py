"""The periodic tasks run their services (Celery eager in tests)."""

import pytest

from audit import services as audit
from audit import tasks
from audit.models import AuditSeal, AuditSealArchive

pytestmark = pytest.mark.django_db


def test_periodic_tasks_seal_sweep_retry_and_archive(settings, tmp_path):
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    settings.AUDIT_ARCHIVE_CATALOG_URI = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    settings.AUDIT_ARCHIVE_WAREHOUSE = str(tmp_path / "warehouse")
    for i in range(3):
        audit.record(action="endpoint.update", actor_name=f"u{i}")
    tasks.seal_events_task.delay()
    assert AuditSeal.objects.count() == 1
    tasks.seal_events_task.delay()  # idempotent: nothing new to seal
    assert AuditSeal.objects.count() == 1
    tasks.sweep_inference_pairs_task.delay()
    tasks.retry_ingest_batches_task.delay()
    tasks.archive_and_prune_task.delay()
    assert AuditSealArchive.objects.count() == 1
