"""An operator finds out why an endpoint does not start, in a real browser: its model version
points at a key missing from the (real, local) S3 store, the sandbox runs KServe's real
storage initializer, which fails; the Operations tab lists the pod held in Init, the events,
and the storage-initializer's log with the line that explains the failure."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from endpoints.services.connections import connection_create
from endpoints.services.endpoints import endpoint_create
from tests.endpoints.endpoint_factories import ModelVersionFactory, deploy_setup, grant
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login, screenshot
from tests.fixtures.kube import require

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def failing_endpoint(sandbox, alice, s3_server, s3_bucket):
    """A Knative endpoint whose storage URI names a key the bucket does not hold."""
    require(sandbox.controller.settings.storage_initializer, "KServe's storage initializer is not available here")
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    grant(alice, setup.project, "view", "deploy")
    keys = s3_server.identities[0]
    connection = connection_create(actor=alice, project=setup.project, name="models", kind="s3",
                                   config={"endpoint_url": s3_server.endpoint_url, "region": "us-east-1"},
                                   secrets={"access_key_id": keys.access_key, "secret_access_key": keys.secret_key})
    uri = f"s3://{s3_bucket}/no-such-model"
    version = ModelVersionFactory(model=setup.model, version=5, storage_uri=uri, connection=connection,
                                  model_format="sklearn")
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=version,
                               deployment_mode="Knative")

    def failed():
        obj = sandbox.isvc("fraud", "scorer") or {}
        return ((obj.get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo")
    sandbox.wait_for(failed, timeout=90, message="the storage initializer to fail")
    return endpoint, uri


@pytest.mark.slow
def test_operator_reads_the_storage_initializers_failure_on_the_operations_tab(
        console_page, live_server, alice, failing_endpoint):
    endpoint, uri = failing_endpoint
    page = console_page
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer"}))
    page.get_by_role("link", name="Operations").click()
    expect(page.get_by_role("heading", name="Pods")).to_be_visible()
    pods = page.locator("[data-pods]")
    expect(pods).to_contain_text("Init:")  # held by its init container
    expect(pods).to_contain_text("storage-initializer")
    events = page.locator("[data-events]")
    expect(events).to_contain_text("Started container storage-initializer")
    expect(events).to_contain_text("InferenceServiceNotReady")
    screenshot(page, "operations-01-pods-and-events")

    page.get_by_role("link", name=re.compile(r"Log of storage-initializer in ")).first.click()
    expect(page.get_by_role("heading", name="Container logs")).to_be_visible()
    # The chooser starts on the container that holds the pod back.
    expect(page.locator("#log-container")).to_have_value("storage-initializer")
    output = page.locator("[data-log-output]")
    expect(output).to_contain_text(f"Copying contents of {uri} to local")
    # KServe's own words for a key the bucket does not hold.
    explanation = "Storage initialization failed: Failed to fetch model. No model found in no-such-model."
    expect(output).to_contain_text(explanation)
    # Following polls the same log in place.
    page.get_by_label("Follow (refresh every 3 s)").check()
    expect(page.locator("[data-log-status]")).to_contain_text("Updated", timeout=10_000)
    expect(output).to_contain_text(explanation)
    screenshot(page, "operations-02-storage-initializer-log")
