"""A data scientist's first deploy in a real browser: register a model and a version with a
reference CSV, deploy it through the wizard, review the plan (the fake API server's dry
run), confirm, and find the InferenceService on the cluster. Screenshots of each step go to
test-output/screenshots/."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from endpoints.models import Endpoint, ModelVersion
from endpoints.services.platform import sync_builtin_runtimes
from endpoints.services.projects import project_create
from tests.endpoints.endpoint_factories import ClusterFactory, grant
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REFERENCE_CSV = "amount,country,fraud\n" + "".join(
    f"{10 + i * 3.5},{('fr', 'de', 'us')[i % 3]},{i % 2}\n" for i in range(60))


@pytest.fixture
def team(admin_user, alice, fake_apiserver):
    """A project on the fake cluster where alice may deploy (an admin set it up)."""
    sync_builtin_runtimes()
    cluster = ClusterFactory(name="sandbox", api_url=fake_apiserver.url)
    project = project_create(actor=admin_user, name="fraud", cluster=cluster)
    grant(alice, project, "view", "deploy")
    return project


@pytest.mark.slow
def test_data_scientist_registers_a_version_deploys_it_and_the_isvc_exists(
        console_page, live_server, alice, team, fake_apiserver, tmp_path):
    page = console_page
    sample = tmp_path / "reference.csv"
    sample.write_text(REFERENCE_CSV)
    login(page, live_server, "alice", DEFAULT_PASSWORD)

    # 1. Register the model and a version with a reference sample.
    page.goto(live_server.url + reverse("endpoints:model-list"))
    page.get_by_role("link", name="Register a model").first.click()
    page.get_by_label("Project").select_option(label=str(team))
    page.get_by_label("Name").fill("card-fraud")
    page.get_by_role("button", name="Register model").click()
    expect(page.get_by_text("Model card-fraud registered")).to_be_visible()
    page.get_by_role("link", name=re.compile("Register (a|the first) version")).first.click()
    page.get_by_label("Storage URI").fill("s3://models/card-fraud/1")
    page.get_by_label("Model format", exact=False).first.fill("sklearn")
    page.get_by_label("Reference sample").set_input_files(str(sample))
    page.get_by_label("Prediction column").fill("fraud")
    screenshot(page, "deploy-01-register-version")
    page.get_by_role("button", name="Register version").click()
    expect(page.get_by_text(re.compile(r"Version 1 of card-fraud registered with a reference profile"))).to_be_visible()
    version = ModelVersion.objects.get(model__name="card-fraud", version=1)
    assert version.reference_rows == 60

    # 2. The wizard: one page in sections, with the runtime preview following the choices.
    page.goto(live_server.url + reverse("endpoints:endpoint-list"))
    page.get_by_role("link", name="Deploy a model").first.click()
    expect(page.get_by_role("heading", name="Deploy a model", level=1)).to_be_visible()
    # The runtime preview listens through htmx (a deferred script): choose only once it runs.
    page.wait_for_load_state("load")
    for legend in ("Model & runtime", "Scaling", "Hardware", "Rollout", "Logging"):
        expect(page.locator("legend", has_text=legend)).to_be_visible()
    page.get_by_label("Project").select_option(label=str(team))
    page.get_by_label("Name", exact=True).fill("card-scorer")
    page.get_by_label("Model version").select_option(label="fraud / card-fraud v1 (sklearn)")
    preview = page.locator("#runtime-preview")
    expect(preview).to_contain_text("KServe will pick kserve-sklearnserver")
    page.get_by_label("Protocol").select_option("v2")
    expect(preview).to_contain_text("KServe will pick kserve-mlserver")
    page.get_by_label("Protocol").select_option("v1")
    expect(preview).to_contain_text("KServe will pick kserve-sklearnserver")
    page.get_by_label("Maximum replicas").fill("3")
    screenshot(page, "deploy-02-wizard")
    page.get_by_role("button", name="Review the plan").click()

    # 3. The plan: nothing applied yet, the API server's dry run accepts it.
    expect(page.get_by_role("heading", name="Create endpoint card-scorer", level=1)).to_be_visible()
    expect(page.get_by_text("Dry run accepted.")).to_be_visible()
    expect(page.get_by_text("it will be created")).to_be_visible()
    assert not Endpoint.objects.filter(name="card-scorer").exists()
    with _client(fake_apiserver) as kube:
        assert kube.get("InferenceService", "fraud", "card-scorer") is None
    screenshot(page, "deploy-03-plan")
    page.get_by_role("button", name="Create endpoint").click()

    # 4. Confirmed: the endpoint page, and the InferenceService on the cluster.
    expect(page.get_by_text("Endpoint card-scorer created: generation 1 is being applied")).to_be_visible()
    expect(page.get_by_role("heading", name="How to call it")).to_be_visible()
    expect(page.locator("pre").filter(has_text="/v1/models/card-scorer:predict")).to_be_visible()
    screenshot(page, "deploy-04-endpoint")
    with _client(fake_apiserver) as kube:
        live = kube.get("InferenceService", "fraud", "card-scorer")
    assert live is not None
    predictor = live["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "s3://models/card-fraud/1"
    assert predictor["maxReplicas"] == 3
    assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "inference-console"

    page.get_by_role("link", name="Manifest").click()
    expect(page.locator("pre")).to_contain_text("storageUri: s3://models/card-fraud/1")

    # 5. A change: its plan diffs against the live object before anything is applied.
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Maximum replicas").fill("4")
    page.get_by_role("button", name="Review the plan").click()
    expect(page.get_by_role("heading", name="Change endpoint card-scorer", level=1)).to_be_visible()
    expect(page.locator("pre").first).to_contain_text("-    maxReplicas: 3")
    expect(page.locator("pre").first).to_contain_text("+    maxReplicas: 4")
    screenshot(page, "deploy-05-edit-plan")
    page.get_by_role("button", name="Apply generation 2").click()
    expect(page.get_by_text("Endpoint card-scorer changed: generation 2 is being applied")).to_be_visible()
    with _client(fake_apiserver) as kube:
        assert kube.get("InferenceService", "fraud", "card-scorer")["spec"]["predictor"]["maxReplicas"] == 4
    page.get_by_role("link", name="Revisions").click()
    expect(page.get_by_role("cell", name="changed max_replicas")).to_be_visible()
    screenshot(page, "deploy-06-revisions")


def _client(server):
    from endpoints.cluster import ClusterClient

    return ClusterClient.for_url(server.url, timeout=5.0)
