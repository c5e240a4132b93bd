"""The Latency and Drift tabs in a real browser while simulated payload-logger traffic (with
injected drift) flows into the console's receiver: the plotly charts render with data, the
strict Content-Security-Policy holds (the console_page fixture fails on any violation), the
drift alert shows, and the range picker redraws without a reload. Screenshots go to
test-output/screenshots/."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from audit import buffer
from audit.ingest import pairs_sweep
from endpoints.spec import ingest_url
from monitoring import simulate, tasks
from monitoring.management.commands.simulate_traffic import _Sender
from monitoring.models import InferenceRecord
from tests.endpoints.endpoint_factories import grant
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login, screenshot
from tests.monitoring.helpers import FEATURES, monitored_endpoint, reference_profile

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class LiveTraffic(threading.Thread):
    """Keeps posting drifted logger events (HTTP only, no database) until stopped."""

    def __init__(self, base_url: str, path: str, profile: simulate.TrafficProfile):
        super().__init__(daemon=True)
        self.sender = _Sender(base_url)
        self.path, self.profile = path, profile
        self.stopping = threading.Event()
        self.calls = 0

    def run(self):
        rng = random.Random(8)
        while not self.stopping.wait(0.25):
            call = simulate.make_call(self.profile, at=datetime.now(tz=UTC), rng=rng, drifted=True)
            for headers, body in call.events:
                self.sender.post(self.path, headers, body)
            self.calls += 1


def chart(page, name: str):
    return page.locator(f'[data-figure="{name}"]')


def drawn_traces(page, name: str) -> int:
    """Traces plotly drew in a panel (its graph div keeps the data it plotted)."""
    return page.evaluate(f"""() => {{
        const div = document.querySelector('[data-figure="{name}"]');
        return div && div.data ? div.data.filter(t => (t.x || t.z || []).length > 0).length : 0;
    }}""")


@pytest.mark.slow
def test_latency_and_drift_tabs_render_live_traffic_and_show_the_drift_alert(console_page, live_server, alice):
    page = console_page
    endpoint = monitored_endpoint(canary=True)
    grant(alice, endpoint.project, "view", "deploy")
    name = f"{endpoint.project.name}/{endpoint.name}"

    # History first (through the real receiver), then drift results as the periodic task computes them.
    call_command("simulate_traffic", endpoint=[name], drift=[name], drift_shift=2.0, drift_minutes=30,
                 url=live_server.url, rate=10, duration=0, backfill_minutes=30, backfill_calls=60, rows=5,
                 error_rate=0.05, seed=3)
    buffer.buffer_drain()  # the ingest worker
    assert InferenceRecord.objects.filter(endpoint=endpoint).count() >= 50
    # Requests whose response never came are dispatched as errors once the pairing timeout passes.
    pairs_sweep(now=timezone.now() + timedelta(seconds=settings.AUDIT_PAIRING_TIMEOUT_SECONDS + 1))
    assert InferenceRecord.objects.filter(endpoint=endpoint, status="error").exists()
    tasks.compute_drift_all_task()

    login(page, live_server, "alice", DEFAULT_PASSWORD)
    signature = [{"name": n, "type": "numeric"} for n in FEATURES]
    live = LiveTraffic(live_server.url, urlsplit(ingest_url(endpoint.project)).path, simulate.TrafficProfile(
        name=endpoint.name, namespace=endpoint.project.namespace, protocol="v1", drift_shift=2.0,
        versions=[("iris-model:1", 80.0, reference_profile(), signature),
                  ("iris-model:2", 20.0, reference_profile(seed=5), signature)], rows_per_request=5))
    live.start()
    try:
        # Latency tab: percentiles per version side by side, throughput, error rate.
        page.goto(f"{live_server.url}/endpoints/{endpoint.project.name}/{endpoint.name}/latency/")
        expect(page.get_by_role("link", name="Latency")).to_have_attribute("aria-current", "page")
        for panel in ("latency", "throughput", "errors"):
            expect(chart(page, panel).locator(".main-svg").first).to_be_visible()
            assert drawn_traces(page, panel) > 0, panel
        assert drawn_traces(page, "latency") == 6  # p50/p95/p99 of the primary and of the canary
        expect(chart(page, "latency").get_by_text("Latency (ms)")).to_be_visible()
        expect(page.get_by_role("row", name="Primary · iris-model v1")).to_be_visible()
        assert max(page.evaluate("document.querySelector('[data-figure=\"errors\"]').data[0].y")
                   or [0], key=lambda v: v or 0) > 0
        screenshot(page, "monitoring-latency-tab")

        # The range picker redraws in place from the JSON (no navigation).
        page.evaluate("window.__samePage = true")
        # (An auto-refresh of the old range may be answered meanwhile: wait for the 1h answer.)
        with page.expect_response(lambda r: "/latency/data/" in r.url and "range=1h" in r.url
                                  and r.status == 200):
            page.get_by_label("Time range", exact=True).select_option("1h")
        expect(page.get_by_text("Updated")).to_be_visible()
        page.wait_for_function(
            "document.querySelector('[data-figure=\"throughput\"]').data[0].x.length === 60")
        assert page.evaluate("window.__samePage") is True
        assert page.url.endswith("?range=1h")

        # Drift tab: alert, heatmap, top features, distributions, prediction drift.
        page.get_by_role("link", name="Drift").click()
        expect(page.locator("[data-drift-status]")).to_have_attribute("data-drift-status", "alert")
        expect(page.get_by_text("Drift alert", exact=True)).to_be_visible()
        for panel in ("heatmap", "top_features", "distribution", "prediction_trend", "prediction_distribution"):
            expect(chart(page, panel).locator(".main-svg").first).to_be_visible()
            assert drawn_traces(page, panel) > 0, panel
        expect(chart(page, "heatmap").locator("image")).to_have_count(1)
        screenshot(page, "monitoring-drift-tab")

        # Choosing another feature redraws the distribution for it.
        with page.expect_response(lambda r: "/drift/data/" in r.url and r.status == 200):
            page.get_by_label("Feature", exact=True).select_option("sepal_width")
        expect(chart(page, "distribution").get_by_text("sepal_width (reference bins)")).to_be_visible()
    finally:
        live.stopping.set()
        live.join(timeout=10)
    assert live.calls > 0 and live.sender.failed == 0
    buffer.buffer_drain()
    assert InferenceRecord.objects.filter(endpoint=endpoint).count() >= 50 + live.calls * 0.8
