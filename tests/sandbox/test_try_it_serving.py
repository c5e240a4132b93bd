"""Issue #23's "Try it", end to end on the sandbox's real data plane, in a real browser: a
scikit-learn model served by KServe's Python model server behind the sandbox's Envoy gateway,
whose ext_authz filter asks the live console. A Caller's "Try it" shows the model's prediction,
status and latency, and the agent logs it like any inference (a record with the Caller as the
principal); a Viewer's is refused by the gateway with the console's reason."""

from __future__ import annotations

import pytest
from django.db.utils import OperationalError
from django.urls import reverse
from playwright.sync_api import expect

from audit import buffer
from audit.models import AuditEvent, IngestBufferEntry
from console.access import grants
from endpoints.models import Cluster
from endpoints.services.endpoints import endpoint_create
from monitoring.models import InferenceRecord
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.fixtures.browser import login
from tests.fixtures.kube import wait_for
from tests.sandbox.test_serving_e2e import SETOSA, VIRGINICA, deployment, trained  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _send(page, body: str):
    panel = page.locator("#try-it")
    expect(panel.get_by_role("heading", name="Try it")).to_be_visible()
    panel.get_by_label("Request body for POST /v1/models/iris:predict").fill(body)
    panel.get_by_role("button", name="Send").click()
    return panel


def test_try_it_answers_a_caller_from_the_model_and_refuses_a_viewer_at_the_gateway(
        deployment, console_page, live_server, django_capture_on_commit_callbacks):  # noqa: F811
    version = deployment.version(trained())
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=deployment.owner, project=deployment.project, name="iris",
                                   model_version=version, deployment_mode="Knative")
    deployment.ready(endpoint)
    Cluster.objects.filter(pk=deployment.project.cluster_id).update(
        kind=Cluster.Kind.SANDBOX, gateway_address=f"127.0.0.1:{deployment.cluster.gateway_port}")
    caller, viewer = UserFactory(username="cal"), UserFactory(username="vic")
    grants.grant_create(actor=None, role="caller", target=deployment.project, user=caller, reason="test")
    grants.grant_create(actor=None, role="viewer", target=deployment.project, user=viewer, reason="test")
    page = console_page
    url = live_server.url + reverse("endpoints:endpoint-detail", kwargs={"project": deployment.name, "name": "iris"})

    login(page, live_server, "cal", DEFAULT_PASSWORD)
    page.goto(url)
    expect(page.get_by_test_id("simulated-label")).to_have_count(0)  # sklearn really serves here
    panel = _send(page, f'{{"instances": [{SETOSA}, {VIRGINICA}]}}')
    expect(panel.get_by_test_id("try-it-status")).to_contain_text("200", timeout=60_000)
    expect(panel.get_by_test_id("try-it-body")).to_contain_text('"predictions": [')
    assert panel.get_by_test_id("try-it-body").inner_text().split() == ["{", '"predictions":', "[", "0,", "2", "]", "}"]
    expect(panel.get_by_test_id("try-it-latency")).to_contain_text("ms")
    tried = AuditEvent.objects.filter(action="endpoint.try", actor_name="cal").get()
    assert tried.details["status"] == 200 and tried.target_id == str(endpoint.pk)

    page.get_by_role("button", name="Sign out").click()
    login(page, live_server, "vic", DEFAULT_PASSWORD)
    page.goto(url)
    panel = _send(page, f'{{"instances": [{SETOSA}]}}')
    expect(panel.get_by_test_id("try-it-status")).to_contain_text("403", timeout=30_000)
    expect(panel.get_by_test_id("try-it-reason")).to_contain_text("no live grant gives 'infer'")
    denial = AuditEvent.objects.filter(action="infer.authorize", actor_name="vic").latest("id")
    assert denial.details["status"] == 403 and denial.target_id == str(endpoint.pk)

    # The agent logged the Caller's try like any inference: a record with the Caller as principal.
    def delivered():
        try:
            return IngestBufferEntry.objects.count() >= 2
        except OperationalError:  # SQLite: the receiver is writing right now
            return False

    wait_for(delivered, 30, "the agent's events to reach the console", interval=0.2)
    buffer.buffer_drain()
    record = InferenceRecord.objects.get(endpoint_id=endpoint.pk)
    assert record.caller == "cal" and record.status == "ok" and record.rows == 2
