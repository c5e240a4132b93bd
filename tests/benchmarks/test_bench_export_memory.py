"""Audit exports at scale: 100,000 events (``--export-events``) streamed as CSV and JSON Lines
while tracemalloc records Python's peak allocation; the peak must stay under 10 MB, and far
below the export's size. Run with ``make bench PYTEST_ARGS="-k export"``."""

from __future__ import annotations

import time

import pytest

from audit.models import AuditEvent
from tests.audit.test_export_memory import PEAK_BOUND, _bulk_events, _export, warm_up

pytestmark = pytest.mark.django_db


def test_export_of_100000_events_streams_with_bounded_memory(client, auditor, report, request):
    events = request.config.getoption("--export-events")
    started = time.perf_counter()
    _bulk_events(events)
    report["events"] = events
    report["bulk insert s"] = round(time.perf_counter() - started, 1)
    client.force_login(auditor)
    warm_up(client)
    for fmt in ("csv", "jsonl"):
        started = time.perf_counter()
        total, lines, peak = _export(client, fmt)
        report[f"{fmt} export"] = (f"{total / 1e6:.1f} MB, {lines:,} lines in {time.perf_counter() - started:.1f} s "
                                   f"(traced), Python peak {peak / 1e6:.2f} MB")
        assert lines == AuditEvent.objects.count() + (1 if fmt == "csv" else 0)
        assert total > 3 * PEAK_BOUND  # far larger than the memory the export used
        assert peak < PEAK_BOUND, f"{fmt}: peak {peak / 1e6:.1f} MB while exporting {total / 1e6:.1f} MB"
