"""Journey — NVIDIA NIM:

a platform admin adds a platform-wide NGC connection (the key is never shown again) and installs
the Llama 3 8B Instruct NIM from the NIM catalog; a data scientist (alice, Deployer on project
"llm" of the sandbox cluster) opens "Deploy an NVIDIA NIM", picks the NIM, sees only the GPU
profile that fits it, reviews the plan, confirms, watches the endpoint become Ready (simulated: no
GPU here) and reads the OpenAI-style "How to call it" of that NIM.

Screenshots: test-output/e2e/nim/NN-<step>.png.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from console.access import grants
from endpoints.models import Endpoint, HardwareProfile, StorageConnection
from endpoints.services.connections import connection_opt_in
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.projects import project_create
from tests.endpoints.endpoint_factories import ClusterFactory
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NGC_KEY = "nvapi-e2e-NGCSECRET-0042"  # noqa: S105 - a test value


@pytest.fixture
def llm_project(admin_user, alice, sandbox):
    cluster = ClusterFactory(name="sandbox", api_url=sandbox.url)
    project = project_create(actor=admin_user, name="llm", cluster=cluster)
    grants.grant_create(actor=admin_user, role="deployer", target=project, user=alice, reason="LLM apps")
    # The sandbox's GPU nodes: A100 80 GB, tainted nvidia.com/gpu=present:NoSchedule.
    HardwareProfile.objects.create(
        name="a100", display_name="NVIDIA A100 80 GB", accelerator_resource="nvidia.com/gpu",
        accelerator_product="NVIDIA-A100-SXM4-80GB", node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        max_accelerators_per_replica=4, max_cpu="16", max_memory="64Gi")
    HardwareProfile.objects.create(name="t4", display_name="NVIDIA T4 16 GB", accelerator_resource="nvidia.com/gpu",
                                   accelerator_product="Tesla-T4", max_accelerators_per_replica=1)
    return project


@pytest.mark.slow
def test_admin_installs_a_nim_and_a_data_scientist_deploys_it_on_a_fitting_gpu(
        console_page, journey, live_server, admin_user, alice, llm_project, sandbox):
    page = console_page
    steps = journey("nim")

    # --- 1. The admin adds the NGC connection (platform-wide) and installs a NIM. -------------------
    login(page, live_server, "admin", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:connection-create"))
    page.get_by_role("link", name="NVIDIA NGC API key").click()
    page.get_by_label("Owned by").select_option(label="Platform-wide (projects opt in)")
    page.get_by_label("Name", exact=True).fill("ngc")
    page.get_by_label("NGC API key").fill(NGC_KEY)
    steps.step("ngc connection")
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_text("ngc", exact=True).first).to_be_visible()
    assert NGC_KEY not in page.content()
    connection = StorageConnection.objects.get(name="ngc", kind="ngc")
    connection_opt_in(actor=admin_user, connection=connection, project=llm_project)  # the project's Owner would

    page.goto(live_server.url + reverse("endpoints:runtime-list"))
    page.get_by_role("link", name="NVIDIA NIM catalog").click()
    expect(page.get_by_role("heading", name="NVIDIA NIM catalog")).to_be_visible()
    page.get_by_role("link", name="Install Llama 3 8B Instruct 1.0.0").click()
    page.get_by_label("NGC connection").select_option(label="ngc")
    page.get_by_label("Create the model cache").check()  # the console creates nvidia-nim-pvc, 300Gi, RWX
    steps.step("install nim")
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_text("NIM runtime nvidia-nim-llama3-8b-instruct-1.0.0 installed.")).to_be_visible()
    expect(page.get_by_text("Installed as nvidia-nim-llama3-8b-instruct-1.0.0")).to_be_visible()
    steps.step("nim installed")
    page.get_by_role("button", name="Sign out").click()

    # --- 2. The data scientist deploys it on the GPU profile that fits. ----------------------------
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:endpoint-list"))
    page.get_by_role("link", name="Deploy an NVIDIA NIM").click()
    page.wait_for_load_state("load")
    page.get_by_label("NIM", exact=True).select_option(label="NIM Llama 3 8B Instruct 1.0.0")
    # Choosing the NIM refreshes the GPU profiles with those that fit it (htmx).
    expect(page.get_by_label("GPU profile").locator("option", has_text="NVIDIA A100 80 GB")).to_have_count(1)
    expect(page.get_by_label("GPU profile").locator("option", has_text="NVIDIA T4 16 GB")).to_have_count(0)
    page.get_by_label("GPU profile").select_option(label="NVIDIA A100 80 GB")
    page.get_by_label("Endpoint name").fill("assistant")
    steps.step("deploy nim")
    page.get_by_role("button", name="Review the plan").click()
    expect(page.get_by_role("heading", name="Create endpoint assistant", level=1)).to_be_visible()
    steps.step("plan")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_text("Endpoint assistant created")).to_be_visible()

    sandbox.wait_ready("llm", "assistant")
    endpoint = Endpoint.objects.get(name="assistant")
    assert endpoint_sync_status(endpoint_id=endpoint.pk) == "Ready"
    expect(page.locator("#endpoint-heading-phase")).to_have_text("Ready", timeout=10_000)
    how = page.get_by_role("region", name="How to call it")
    expect(how).to_contain_text("/v1/chat/completions", timeout=15_000)
    expect(how).to_contain_text("meta/llama3-8b-instruct")
    steps.step("how to call it")
    assert NGC_KEY not in page.content()
    live = sandbox.isvc("llm", "assistant")
    assert live["spec"]["predictor"]["model"]["runtime"] == "nvidia-nim-llama3-8b-instruct-1.0.0"
    assert live["spec"]["predictor"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
