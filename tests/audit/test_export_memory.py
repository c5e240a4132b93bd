"""Exports stream with bounded memory: Python's peak allocation while an export streams does
not grow with the trail (the 100,000-event run, with its absolute bound against the export's
size, is a benchmark: tests/benchmarks/test_bench_export_memory.py)."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent

pytestmark = [pytest.mark.django_db]

# Python allocations while one export streams, measured after a warm-up request (so that
# modules imported on first use are not counted). About 5 MB in practice: one fetched chunk
# of rows plus one written chunk.
PEAK_BOUND = 10 * 1024 * 1024


def _bulk_events(n: int) -> None:
    start = timezone.now() - timedelta(days=1)
    batch = []
    for i in range(n):
        batch.append(AuditEvent(
            occurred_at=start + timedelta(milliseconds=i), action="endpoint.update", actor_name=f"user{i % 97}",
            target_type="endpoint", target_id=str(i % 500), target_repr=f"fraud/endpoint-{i % 500}",
            project_name="fraud", source_ip="192.0.2.10", user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            details={"old": {"min_replicas": i % 3, "max_replicas": 4}, "new": {"min_replicas": 1 + i % 3,
                                                                              "max_replicas": 4}},
        ))
        if len(batch) == 10_000:
            audit.record_many(batch)
            batch = []
    audit.record_many(batch)


def _export(client, fmt: str) -> tuple[int, int, int]:
    """(bytes, lines, traced peak) of one streamed export."""
    tracemalloc.start()
    try:
        response = client.get(reverse("audit:event-export", args=[fmt]))
        assert response.status_code == 200 and response.streaming
        total = lines = 0
        for chunk in response.streaming_content:  # consumed as a client would, never held whole
            total += len(chunk)
            lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, lines, peak


def warm_up(client) -> None:
    """One export first, so modules imported on first use are not counted."""
    response = client.get(reverse("audit:event-export", args=["csv"]), {"actor": "nobody-at-all"})
    b"".join(response.streaming_content)


@pytest.mark.slow
def test_export_memory_does_not_grow_with_the_trail(client, auditor):
    client.force_login(auditor)
    warm_up(client)
    _bulk_events(3_000)
    small = {fmt: _export(client, fmt) for fmt in ("csv", "jsonl")}
    _bulk_events(12_000)
    for fmt in ("csv", "jsonl"):
        total, lines, peak = _export(client, fmt)
        # Every event (the exports' and the sign-in's own too) plus the CSV header.
        assert lines == AuditEvent.objects.count() + (1 if fmt == "csv" else 0)
        assert total > 4 * small[fmt][0]  # five times the events ...
        # ... and the same memory: one fetched chunk of rows plus one written chunk at a time.
        assert peak < 1.5 * small[fmt][2] + 512 * 1024, (
            f"{fmt}: peak {peak / 1e6:.1f} MB for {total / 1e6:.1f} MB vs {small[fmt][2] / 1e6:.1f} MB for "
            f"{small[fmt][0] / 1e6:.1f} MB")
        assert peak < PEAK_BOUND
