"""Quarter-hour rollups: the 24-hour dashboard's points, kept in step with the minute rollups
as records arrive, and computed for the minute rollups stored before they existed."""

from __future__ import annotations

import importlib
from collections import defaultdict

import pytest
from django.apps import apps

from endpoints.selectors import endpoint_queryset
from monitoring import selectors
from monitoring.models import LatencyRollup
from tests.monitoring.helpers import monitored_endpoint
from tests.monitoring.test_dashboards import traffic

pytestmark = pytest.mark.django_db


def _by_quarter(endpoint) -> dict:
    sums = defaultdict(lambda: [0, 0, 0])
    for row in LatencyRollup.objects.filter(endpoint=endpoint, resolution=LatencyRollup.MINUTE):
        stamp = int(row.start.timestamp())
        entry = sums[(row.version_key, stamp - stamp % 900)]
        entry[0] += row.requests
        entry[1] += row.errors
        entry[2] += row.h10
    return dict(sums)


def _quarters(endpoint) -> dict:
    return {(row.version_key, int(row.start.timestamp())): [row.requests, row.errors, row.h10]
            for row in LatencyRollup.objects.filter(endpoint=endpoint, resolution=LatencyRollup.QUARTER)}


def test_quarter_hour_rollups_add_up_to_their_minutes_and_feed_the_24_hour_range():
    endpoint = monitored_endpoint(canary=True)
    traffic(endpoint, minutes=90, errors_every=7)
    traffic(endpoint, version=endpoint.canary_version, minutes=40, seed=2)
    assert _quarters(endpoint) == _by_quarter(endpoint)
    dashboard = selectors.latency_dashboard(endpoint=endpoint_queryset().get(pk=endpoint.pk), range_key="24h")
    assert dashboard.window.option.resolution == LatencyRollup.QUARTER
    assert sum(v.totals["requests"] for v in dashboard.versions) == 130


def test_the_migration_computes_quarter_rollups_for_stored_minutes():
    endpoint = monitored_endpoint()
    traffic(endpoint, minutes=45, errors_every=5)
    expected = _quarters(endpoint)
    LatencyRollup.objects.filter(resolution=LatencyRollup.QUARTER).delete()
    migration = importlib.import_module("monitoring.migrations.0004_backfill_quarter_hour_rollups")
    migration.backfill(apps, None)
    assert _quarters(endpoint) == expected and expected
