"""Journey 1 — a data scientist (alice, Deployer on project "fraud" of the sandbox cluster):

register a model and a version with a reference CSV — its artifact in the team's private bucket on
a real S3 server, read through the project's storage connection (the registration checks it with
the connection's keys) — deploy it through the wizard, review the plan (its storage check and the
Secret and ServiceAccount the console writes), confirm, watch the endpoint become Ready without reloading the page, feed it real KServe
payload-logger CloudEvents and open the Latency and Drift dashboards, start a canary at 25 %,
see the canary's share in the traffic split, promote it and see v2 as the endpoint's version.

The cluster is the fake API server with the simulated KServe controller (no delays). Celery
runs eagerly in tests, so nothing follows the rollout in the background: where a worker's
status sync would run, the test runs the same service (``endpoint_sync_status``) and the page,
which polls its status card every 3 seconds, picks the result up by itself.

Screenshots: test-output/e2e/data-scientist/NN-<step>.png.
"""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import expect

from audit import buffer
from console.access import grants
from endpoints.models import Endpoint
from endpoints.services.connections import connection_create
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.platform import sync_builtin_runtimes
from endpoints.services.projects import project_create
from monitoring import tasks
from monitoring.models import InferenceRecord
from tests.endpoints.endpoint_factories import ClusterFactory
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login
from tests.fixtures.storage import s3_client

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REFERENCE_CSV = "amount,country,fraud\n" + "".join(
    f"{10 + (i * 7.3) % 90:.2f},{('fr', 'de', 'us')[i % 3]},{i % 2}\n" for i in range(120))


@pytest.fixture
def fraud_project(admin_user, alice, sandbox, s3_server, s3_bucket):
    """What a platform admin set up beforehand: the project on the cluster, alice a Deployer, and
    the team's private bucket (with the model's artifact) behind the connection fraud-models."""
    sync_builtin_runtimes()
    cluster = ClusterFactory(name="sandbox", api_url=sandbox.url)
    project = project_create(actor=admin_user, name="fraud", cluster=cluster)
    grants.grant_create(actor=admin_user, role="deployer", target=project, user=alice,
                        reason="Fraud model owner")
    s3_client(s3_server).put_object(Bucket=s3_bucket, Key="card-fraud/1/model.joblib", Body=b"trained model")
    identity = s3_server.identities[0]
    connection_create(actor=admin_user, project=project, name="fraud-models", kind="s3",
                      config={"endpoint_url": s3_server.endpoint_url, "region": "us-east-1"},
                      secrets={"access_key_id": identity.access_key, "secret_access_key": identity.secret_key})
    project.private_bucket = s3_bucket
    return project


def plotted_traces(page, figure: str) -> int:
    """Traces with data that plotly drew in one dashboard panel."""
    return page.evaluate("""(name) => {
        const div = document.querySelector(`[data-figure="${name}"]`);
        return div && div.data ? div.data.filter(t => (t.x || t.z || t.y || []).length > 0).length : 0;
    }""", figure)


def sync_status_as_the_worker_would(endpoint_name: str) -> str:
    endpoint = Endpoint.objects.get(name=endpoint_name)
    return endpoint_sync_status(endpoint_id=endpoint.pk)


@pytest.mark.slow
def test_data_scientist_deploys_watches_monitors_canaries_and_promotes(
        console_page, journey, live_server, alice, fraud_project, sandbox, tmp_path):
    page = console_page
    steps = journey("data-scientist")
    sample = tmp_path / "reference.csv"
    sample.write_text(REFERENCE_CSV)
    login(page, live_server, "alice", DEFAULT_PASSWORD)

    # --- 1. Register the model and its first version with a reference sample. ---------------
    page.goto(live_server.url + reverse("endpoints:model-list"))
    page.get_by_role("link", name="Register a model").first.click()
    page.get_by_label("Project").select_option(label=str(fraud_project))
    page.get_by_label("Name").fill("card-fraud")
    steps.step("register model")
    page.get_by_role("button", name="Register model").click()
    expect(page.get_by_text("Model card-fraud registered")).to_be_visible()
    model_url = page.url

    page.get_by_role("link", name=re.compile("Register (a|the first) version")).first.click()
    private_uri = f"s3://{fraud_project.private_bucket}/card-fraud/1"
    page.get_by_label("Storage URI").fill(f"s3://{fraud_project.private_bucket}/card-fraud/404")
    page.get_by_label("Connection").select_option(label="fraud-models (S3 or S3-compatible)")
    page.get_by_label("Model format").fill("sklearn")
    page.get_by_role("button", name="Register version").click()
    # The registration asks the bucket with the connection's keys: nothing is there.
    error = page.locator("#id_storage_uri_error")
    expect(error).to_contain_text("card-fraud/404")
    expect(error).to_contain_text("checked with connection fraud-models")
    steps.step("version refused: no artifact at that key")
    page.get_by_label("Storage URI").fill(private_uri)
    page.get_by_label("Connection").select_option(label="fraud-models (S3 or S3-compatible)")
    page.get_by_label("Model format").fill("sklearn")
    page.get_by_label("Reference sample").set_input_files(str(sample))
    page.get_by_label("Prediction column").fill("fraud")
    steps.step("register version 1 with reference sample")
    page.get_by_role("button", name="Register version").click()
    expect(page.get_by_text("Version 1 of card-fraud registered with a reference profile")).to_be_visible()
    steps.step("version 1 registered")

    # --- 2. The wizard, then the plan (nothing applied yet), then confirm. -------------------
    page.goto(live_server.url + reverse("endpoints:endpoint-list"))
    page.get_by_role("link", name="Deploy a model").first.click()
    # The runtime preview listens through htmx (a deferred script): choose only once it runs.
    page.wait_for_load_state("load")
    page.get_by_label("Project").select_option(label=str(fraud_project))
    page.get_by_label("Name", exact=True).fill("card-scorer")
    page.get_by_label("Model version").select_option(label="fraud / card-fraud v1 (sklearn)")
    expect(page.locator("#runtime-preview")).to_contain_text("KServe will pick kserve-sklearnserver")
    page.get_by_label("Maximum replicas").fill("2")
    expect(page.get_by_label("Payload logging")).to_have_value("all")
    steps.step("deploy wizard")
    page.get_by_role("button", name="Review the plan").click()

    expect(page.get_by_role("heading", name="Create endpoint card-scorer", level=1)).to_be_visible()
    expect(page.get_by_text("Dry run accepted.")).to_be_visible()
    expect(page.get_by_text("Artifact found:")).to_be_visible()
    expect(page.get_by_text("the console writes Secret ic-fraud-models and ServiceAccount ic-fraud-models")
           ).to_be_visible()
    assert not Endpoint.objects.filter(name="card-scorer").exists()
    assert sandbox.isvc("fraud", "card-scorer") is None
    steps.step("plan reviewed")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_text("Endpoint card-scorer created: generation 1 is being applied")).to_be_visible()

    # --- 3. Watch the status card turn Ready, in place. ----------------------------------------
    status_card = page.get_by_role("region", name="Status")
    expect(status_card).to_contain_text("refreshing every 3 seconds")
    steps.step("endpoint deploying")
    page.evaluate("window.__samePage = true")
    sandbox.wait_for(lambda: _ready(sandbox.isvc("fraud", "card-scorer")),
                     message="the controller to report card-scorer Ready")
    assert sync_status_as_the_worker_would("card-scorer") == "Ready"
    expect(status_card.get_by_text("Ready", exact=True).first).to_be_visible(timeout=10_000)
    # The heading's badge follows the card (no page showing Deploying and Ready at once).
    expect(page.locator("#endpoint-heading-phase")).to_have_text("Ready", timeout=10_000)
    expect(status_card).not_to_contain_text("refreshing every 3 seconds")
    expect(status_card).to_contain_text("http://card-scorer.fraud.example.com")
    live = sandbox.isvc("fraud", "card-scorer")
    assert live["spec"]["predictor"]["serviceAccountName"] == "ic-fraud-models"
    assert live["spec"]["predictor"]["model"]["storageUri"] == private_uri
    assert page.evaluate("window.__samePage") is True, "the status changed by a reload, not by polling"
    steps.step("endpoint ready")
    detail_url = page.url

    # --- 4. Traffic through the console's receiver, then the Latency and Drift tabs. ----------
    call_command("simulate_traffic", endpoint=["fraud/card-scorer"], drift=["fraud/card-scorer"],
                 drift_shift=2.0, drift_minutes=15, url=live_server.url, duration=0, backfill_minutes=30,
                 backfill_calls=80, rows=4, rate=10, error_rate=0.05, principal=["alice"], seed=11)
    buffer.buffer_drain()  # the ingest worker (make run starts one)
    assert InferenceRecord.objects.filter(endpoint__name="card-scorer").count() >= 70

    page.get_by_role("link", name="Latency").click()
    expect(page.get_by_role("link", name="Latency")).to_have_attribute("aria-current", "page")
    for panel in ("latency", "throughput", "errors"):
        expect(page.locator(f'[data-figure="{panel}"] .main-svg').first).to_be_visible()
        assert plotted_traces(page, panel) > 0, f"the {panel} chart is empty"
    steps.step("latency dashboard")

    # Drift: the default needs 500 rows per window; alice lowers it, then the periodic drift
    # computation runs (the beat's task, eager here).
    page.get_by_role("link", name="Drift").click()
    expect(page.get_by_role("link", name="Drift")).to_have_attribute("aria-current", "page")
    page.get_by_label("Minimum rows per window").fill("50")
    page.get_by_role("button", name="Save drift settings").click()
    expect(page.get_by_text("Drift settings saved")).to_be_visible()
    tasks.compute_drift_all_task()
    page.reload()
    for panel in ("heatmap", "top_features", "distribution"):
        expect(page.locator(f'[data-figure="{panel}"] .main-svg').first).to_be_visible()
        assert plotted_traces(page, panel) > 0, f"the {panel} chart is empty"
    expect(page.locator("[data-drift-status]")).to_have_attribute("data-drift-status", re.compile("alert|warning"))
    steps.step("drift dashboard")

    # --- 5. A second version, and a canary with 25 % of the traffic. ---------------------------
    page.goto(model_url)
    page.get_by_role("link", name=re.compile("Register (a|the next|a new) version")).first.click()
    page.get_by_label("Storage URI").fill("s3://models/card-fraud/2")
    page.get_by_label("Model format").fill("sklearn")
    page.get_by_label("Reference sample").set_input_files(str(sample))
    page.get_by_label("Prediction column").fill("fraud")
    page.get_by_role("button", name="Register version").click()
    expect(page.get_by_text("Version 2 of card-fraud registered")).to_be_visible()

    page.goto(detail_url)
    page.get_by_role("link", name="Start canary").click()
    page.get_by_label("Canary version").select_option(label="fraud / card-fraud v2 (sklearn)")
    page.get_by_label("Canary traffic (%)").fill("25")
    steps.step("canary form")
    page.get_by_role("button", name="Review the plan").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("card-scorer")
    expect(page.get_by_text("Dry run accepted.")).to_be_visible()
    steps.step("canary plan")
    page.get_by_role("button", name="Apply generation 2").click()
    expect(page.get_by_text("Endpoint card-scorer changed: generation 2 is being applied")).to_be_visible()
    expect(page.get_by_text("canary v2 at 25%")).to_be_visible()

    sandbox.wait_for(lambda: _canary_split(sandbox.isvc("fraud", "card-scorer")),
                     message="the controller to split traffic to the canary")
    sync_status_as_the_worker_would("card-scorer")
    page.reload()
    split = page.get_by_role("table", name="Traffic split")
    expect(split.get_by_role("row").filter(has_text="latest")).to_contain_text("25%")
    expect(split.get_by_role("row").filter(has_text="prev")).to_contain_text("75%")
    steps.step("canary traffic split")

    # --- 6. Promote the canary: plan, confirm, v2 is the endpoint's version. -------------------
    page.get_by_role("button", name="Promote canary").click()
    expect(page.get_by_role("heading", name="Promote the canary of card-scorer", level=1)).to_be_visible()
    steps.step("promote plan")
    page.get_by_role("button", name="Apply generation 3").click()
    expect(page.get_by_text("Endpoint card-scorer promoted its canary: generation 3")).to_be_visible()
    expect(page.locator(".page-description")).to_contain_text("card-fraud v2")
    expect(page.locator(".page-description")).not_to_contain_text("canary")
    expect(page.get_by_role("link", name="Promote canary")).to_have_count(0)
    sandbox.wait_for(lambda: _serves(sandbox.isvc("fraud", "card-scorer"), "s3://models/card-fraud/2"),
                     message="the cluster to serve v2 on all traffic")
    sync_status_as_the_worker_would("card-scorer")
    page.reload()
    expect(page.get_by_role("table", name="Traffic split")).to_contain_text("100%")
    steps.step("canary promoted")
    endpoint = Endpoint.objects.select_related("model_version").get(name="card-scorer")
    assert endpoint.model_version.version == 2 and endpoint.canary_version_id is None


def _ready(isvc: dict | None) -> bool:
    conditions = ((isvc or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _canary_split(isvc: dict | None) -> bool:
    traffic = (((isvc or {}).get("status") or {}).get("components") or {}).get("predictor", {}).get("traffic") or []
    return _ready(isvc) and sorted(t.get("percent") for t in traffic) == [25, 75]


def _serves(isvc: dict | None, storage_uri: str) -> bool:
    predictor = ((isvc or {}).get("spec") or {}).get("predictor") or {}
    traffic = (((isvc or {}).get("status") or {}).get("components") or {}).get("predictor", {}).get("traffic") or []
    return (_ready(isvc) and predictor.get("model", {}).get("storageUri") == storage_uri
            and "canaryTrafficPercent" not in predictor and [t.get("percent") for t in traffic] == [100])
