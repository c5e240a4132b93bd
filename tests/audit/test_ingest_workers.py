"""Several ingest workers draining the payload-logger buffer at once (PostgreSQL, SKIP LOCKED):
a request and its response taken by two workers whose transactions overlap are still paired
(without waiting for the sweep), and every event is recorded exactly once, redelivery included."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from audit import buffer
from audit.models import AuditEvent, InferenceEventPart
from monitoring.models import InferenceRecord
from tests.audit import samples
from tests.monitoring.helpers import monitored_endpoint

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _assert_paired_exactly_once(endpoint, calls: int) -> None:
    records = InferenceRecord.objects.filter(endpoint=endpoint)
    assert records.count() == calls
    assert records.values("event_id").distinct().count() == calls
    assert set(records.values_list("status", flat=True)) == {"ok"}  # paired, not timed out
    events = AuditEvent.objects.filter(source="inference", action="infer.request")
    assert events.count() == calls
    assert events.values("external_id").distinct().count() == calls
    assert InferenceEventPart.objects.count() == 2 * calls
    assert not InferenceEventPart.objects.filter(dispatched_at__isnull=True).exists()  # no sweep needed
    assert buffer.buffer_depth() == 0


def _in_thread(name: str, target, results: dict) -> threading.Thread:
    def run():
        try:
            results[name] = target()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[name] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def _waiting_for_an_event_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


def test_halves_taken_by_two_overlapping_workers_are_paired_at_once(post_kserve, monkeypatch):
    endpoint = monitored_endpoint()
    for delivery in samples.logger_call(endpoint, 0):
        assert post_kserve(endpoint.project, delivery, drain=False).status_code == 202
    # Worker A takes the request and holds its transaction open, uncommitted, until released.
    holding, release = threading.Event(), threading.Event()
    delete = buffer._delete

    def delete_then_hold(ids):
        delete(ids)
        if threading.current_thread().name == "worker-a":
            holding.set()
            release.wait(60)

    monkeypatch.setattr(buffer, "_delete", delete_then_hold)
    results: dict = {}
    worker_a = _in_thread("worker-a", lambda: buffer.drain_once(limit=1), results)
    assert holding.wait(60)
    # Worker B skips A's locked row, takes the response, and waits for A's commit on the event.
    worker_b = _in_thread("worker-b", lambda: buffer.drain_once(limit=1), results)
    deadline = time.monotonic() + 60
    while not _waiting_for_an_event_lock():
        assert worker_b.is_alive(), f"worker B did not wait for worker A: {results.get('worker-b')}"
        assert time.monotonic() < deadline, "worker B never waited for worker A's lock on the event"
        time.sleep(0.05)
    release.set()
    worker_a.join(60)
    worker_b.join(60)
    assert results["worker-a"]["deliveries"] == 1 and results["worker-b"]["deliveries"] == 1, results
    _assert_paired_exactly_once(endpoint, 1)


def test_concurrent_workers_record_every_pair_once_and_redelivery_adds_nothing(post_kserve, settings):
    settings.AUDIT_INGEST_DRAIN_BATCH = 15
    endpoint = monitored_endpoint()
    calls = 60
    pairs = [samples.logger_call(endpoint, n) for n in range(calls)]
    # Every request first, then every response: halves land in batches of different workers.
    deliveries = [p[0] for p in pairs] + [p[1] for p in pairs]
    for _round in range(2):  # the second round redelivers the same CloudEvents (same ids)
        for delivery in deliveries:
            assert post_kserve(endpoint.project, delivery, drain=False).status_code == 202
        results: dict = {}
        workers = [_in_thread(f"worker-{n}", buffer.buffer_drain, results) for n in range(3)]
        for worker in workers:
            worker.join(120)
        assert not [r for r in results.values() if isinstance(r, Exception)], results
        assert sum(r["deliveries"] for r in results.values()) == 2 * calls
        assert sum(r["failed"] for r in results.values()) == 0
        _assert_paired_exactly_once(endpoint, calls)
