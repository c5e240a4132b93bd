"""An auditor in a real browser: filters the trail to one endpoint, opens an event's diff,
exports CSV and runs the integrity check. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit import sealing
from audit import services as audit
from audit.models import AuditEvent
from tests.endpoints.endpoint_factories import EndpointFactory, ProjectFactory
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def trail(settings):
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    project = ProjectFactory(name="fraud", namespace="fraud")
    scorer = EndpointFactory(project=project, name="scorer")
    ranker = EndpointFactory(project=project, name="ranker")
    audit.record(action="endpoint.create", actor_name="alice", target=scorer, project=project,
                 details={"new": {"min_replicas": 1, "runtime": "kserve-sklearnserver"}})
    audit.record(action="endpoint.update", actor_name="alice", target=scorer, project=project,
                 details={"old": {"min_replicas": 1, "max_replicas": 2}, "new": {"min_replicas": 3, "max_replicas": 2}})
    audit.record(action="k8s.patch", source="kubernetes", actor_name="system:serviceaccount:console",
                 target_type="k8s:inferenceservices", target_id="fraud/scorer",
                 target_repr="inferenceservices fraud/scorer", project=project)
    audit.record(action="endpoint.update", actor_name="bob", target=ranker, project=project,
                 details={"old": {"min_replicas": 1}, "new": {"min_replicas": 2}})
    sealing.seal_pending()
    return {"scorer": scorer, "ranker": ranker}


@pytest.mark.slow
def test_auditor_filters_to_an_endpoint_opens_a_diff_exports_csv_and_verifies(
        console_page, live_server, auditor, trail):
    page = console_page
    login(page, live_server, "carol", DEFAULT_PASSWORD)

    # 1. The trail, filtered to one endpoint.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    page.get_by_label("Endpoint").fill("fraud/scorer")  # typed: the page lists no endpoints
    page.get_by_role("button", name="Apply filters").click()
    table = page.locator("table[data-audit-events]")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table).not_to_contain_text("bob")
    expect(table).to_contain_text("k8s.patch")
    screenshot(page, "audit-01-trail-filtered-to-endpoint")

    # 2. An event's old/new diff.
    table.get_by_role("link", name="endpoint.update").click()
    diff = page.locator("table[data-diff]")
    expect(diff).to_be_visible()
    changed = diff.locator("tr[data-changed]")
    expect(changed).to_have_count(1)
    expect(changed).to_contain_text("min_replicas")
    expect(changed.locator("del")).to_have_text("1")
    expect(changed.locator("ins")).to_have_text("3")
    expect(page.get_by_text(re.compile(r"Sealed by seal \d+"))).to_be_visible()
    screenshot(page, "audit-02-event-diff")

    # 3. Back to the filtered trail and export it as CSV.
    page.go_back()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert sorted(r["action"] for r in rows) == ["endpoint.create", "endpoint.update", "k8s.patch"]
    export = AuditEvent.objects.get(action="audit.export")
    assert export.actor_name == "carol" and export.details["filters"] == {"endpoint": "fraud/scorer"}

    # 4. The integrity check.
    page.goto(live_server.url + reverse("audit:integrity"))
    page.get_by_role("button", name="Run verification").click()
    expect(page.locator("[data-verification='ok']")).to_be_visible()
    expect(page.get_by_text("The audit trail verifies", exact=False).first).to_be_visible()
    screenshot(page, "audit-03-integrity-verified")
    assert AuditEvent.objects.filter(action="audit.verify", actor_name="carol", outcome="success").exists()
