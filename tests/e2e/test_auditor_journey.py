"""Journey 3 — an auditor (carol, global Auditor role):

after real audited activity (an admin sets up a project and grants, alice and bob register a
model and deploy and change endpoints through the services, all applied to the fake API
server), carol searches the trail with filters, opens an endpoint update with its old/new
diff, exports the filtered trail as CSV (the download's header row and row count checked),
runs the integrity verification and sees it pass; then an event is deleted with the one
documented bypass (``audit.db.bypass``), and the next verification fails, naming the event.

Screenshots: test-output/e2e/auditor/NN-<step>.png.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import expect

from audit import sealing
from audit.db import PRUNE, bypass
from audit.exports import COLUMNS
from audit.models import AuditEvent
from console.access import grants
from endpoints.services.endpoints import endpoint_create, endpoint_update
from endpoints.services.platform import sync_builtin_runtimes
from endpoints.services.projects import project_create
from endpoints.services.registry import model_register, model_version_create
from tests.endpoints.endpoint_factories import ClusterFactory
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def activity(settings, admin_user, alice, bob, fake_apiserver):
    """Audited activity made through the services, then sealed (the sealer's periodic run)."""
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    sync_builtin_runtimes()
    cluster = ClusterFactory(name="sandbox", api_url=fake_apiserver.url)
    project = project_create(actor=admin_user, name="fraud", cluster=cluster)
    for user in (alice, bob):
        grants.grant_create(actor=admin_user, role="deployer", target=project, user=user, reason="fraud launch")
    model = model_register(actor=alice, project=project, name="card-fraud", task="classification")
    version = model_version_create(actor=alice, model=model, storage_uri="s3://models/card-fraud/1",
                                   model_format="sklearn")
    scorer = endpoint_create(actor=alice, project=project, name="scorer", model_version=version,
                             max_replicas=2)
    ranker = endpoint_create(actor=bob, project=project, name="ranker", model_version=version)
    endpoint_update(actor=alice, endpoint=scorer, max_replicas=4)
    endpoint_update(actor=bob, endpoint=ranker, min_replicas=2, max_replicas=3)
    sealing.seal_pending()
    return {"scorer": scorer, "ranker": ranker}


@pytest.mark.slow
def test_auditor_searches_opens_a_diff_exports_and_verifies_then_detects_tampering(
        console_page, journey, live_server, auditor, activity):
    page = console_page
    steps = journey("auditor")
    login(page, live_server, "carol", DEFAULT_PASSWORD)

    # --- 1. The trail, then filtered: alice's endpoint actions on fraud/scorer. ------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    table = page.locator("table[data-audit-events]")
    expect(table).to_contain_text("grant.create")
    expect(table).to_contain_text("bob")
    steps.step("audit trail")
    page.get_by_label("Endpoint").fill("fraud/scorer")  # typed: the page lists no endpoints
    page.get_by_label("Actor").fill("alice")
    page.get_by_label("Action").fill("endpoint.")
    page.get_by_role("button", name="Apply filters").click()
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(table).not_to_contain_text("bob")
    expect(rows.nth(0)).to_contain_text("endpoint.update")
    expect(rows.nth(1)).to_contain_text("endpoint.create")
    steps.step("trail filtered")
    filtered_url = page.url

    # --- 2. The update's old/new diff, and the seal that covers it. ------------------------------
    table.get_by_role("link", name="endpoint.update").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("endpoint.update")
    changed = page.locator("table[data-diff] tr[data-changed]")
    expect(changed).to_have_count(1)
    expect(changed.get_by_role("rowheader")).to_have_text("max_replicas")
    expect(changed.get_by_role("deletion")).to_have_text("2")
    expect(changed.get_by_role("insertion")).to_have_text("4")
    expect(page.get_by_text(re.compile(r"Sealed by seal \d+"))).to_be_visible()
    steps.step("event diff")
    update_id = int(re.search(r"/audit/events/(\d+)/", page.url).group(1))

    # --- 3. Export the filtered trail as CSV. ------------------------------------------------------
    page.goto(filtered_url)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert re.fullmatch(r"audit-trail-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    text = Path(download.path()).read_text(encoding="utf-8")
    header, *records = list(csv.reader(io.StringIO(text)))
    assert header == list(COLUMNS)
    assert len(records) == 2
    exported = [dict(zip(header, record, strict=True)) for record in records]
    assert sorted(r["action"] for r in exported) == ["endpoint.create", "endpoint.update"]
    assert {r["actor_name"] for r in exported} == {"alice"}
    assert {(r["target_type"], r["target_id"]) for r in exported} == {("endpoint", str(activity["scorer"].pk))}
    export = AuditEvent.objects.get(action="audit.export")
    assert export.actor_name == "carol" and export.details["filters"]["actor"] == "alice"

    # --- 4. Verification passes. --------------------------------------------------------------------
    page.get_by_role("link", name="Integrity").click()
    expect(page.get_by_role("heading", name="Integrity", level=1)).to_be_visible()
    page.get_by_role("button", name="Run verification").click()
    expect(page.locator("[data-verification='ok']")).to_be_visible()
    expect(page.get_by_text("The audit trail verifies").first).to_be_visible()
    steps.step("verification passes")

    # --- 5. Someone with database access deletes the sealed update through the bypass. ----------
    with bypass(PRUNE), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [update_id])
        assert cursor.rowcount == 1
    page.get_by_role("button", name="Run verification").click()
    result = page.get_by_role("region", name="Result")
    expect(result).to_have_attribute("data-verification", "failed")
    expect(page.get_by_text(re.compile(r"Verification failed: \d+ problem"))).to_be_visible()
    expect(result).to_contain_text(f"First: event {update_id} was deleted")
    problem = result.get_by_role("row").filter(has_text=f"event {update_id} was deleted")
    expect(problem.get_by_role("cell").first).to_have_text("deleted")
    expect(problem.get_by_role("cell").nth(1)).to_have_text(str(update_id))
    steps.step("verification names the deleted event")
    assert AuditEvent.objects.filter(action="audit.verify", actor_name="carol", outcome="failure").exists()
