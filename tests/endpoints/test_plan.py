"""The plan page and plan API against the fake Kubernetes API server: the live diff, the
server's dry-run verdict, the accelerator shortfall, canary traffic, and a confirmation that
is refused when the endpoint moved on since the plan was reviewed."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints.models import Endpoint, HardwareProfile, Revision
from endpoints.services.capabilities import cluster_discover
from endpoints.services.endpoints import endpoint_create, endpoint_update
from tests.endpoints.endpoint_factories import deploy_setup, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(alice, fake_apiserver):
    setup = deploy_setup(actor=alice, api_url=fake_apiserver.url, capacity=4, quota=None)
    grant(alice, setup.project, "view", "deploy")
    return setup


@pytest.fixture
def applied(setup, alice, django_capture_on_commit_callbacks):
    """An endpoint applied to the fake server (generation 1, Knative, 1–2 replicas)."""
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                                   max_replicas=2)
    assert setup.live_isvc("scorer") is not None
    return endpoint


def _edit_data(endpoint: Endpoint, **overrides) -> dict:
    data = {
        "description": endpoint.description, "model_version": endpoint.model_version_id, "protocol": endpoint.protocol,
        "runtime": endpoint.runtime_id or "", "env": "", "args": "", "deployment_mode": endpoint.deployment_mode,
        "min_replicas": endpoint.min_replicas, "max_replicas": endpoint.max_replicas, "scale_metric": "",
        "scale_target": "", "container_concurrency": "", "timeout_seconds": "",
        "hardware_profile": endpoint.hardware_profile_id or "", "accelerator_count": endpoint.accelerator_count,
        "cpu_request": "", "cpu_limit": "", "memory_request": "", "memory_limit": "",
        "canary_version": "", "canary_traffic_percent": "", "logging_mode": endpoint.logging_mode,
    }
    data.update(overrides)
    return {k: ("" if v is None else v) for k, v in data.items()}


def _plan_for_edit(client, endpoint, **overrides):
    url = reverse("endpoints:endpoint-edit", kwargs={"project": endpoint.project.name, "name": endpoint.name})
    response = client.post(url, _edit_data(endpoint, **overrides))
    assert response.status_code == 302, response.content.decode()[:2000]
    plan_url = response["Location"]
    return plan_url, client.get(plan_url)


def _counts():
    return Endpoint.objects.count(), Revision.objects.count(), AuditEvent.objects.count()


def test_plan_shows_the_live_diff_and_the_dry_run_verdict(client, alice, applied):
    client.force_login(alice)
    before = _counts()

    _, page = _plan_for_edit(client, applied, max_replicas=4)

    html = page.content.decode()
    assert page.status_code == 200
    assert "-    maxReplicas: 2" in html and "+    maxReplicas: 4" in html
    assert "Dry run accepted" in html
    assert "<code>max_replicas</code>" in html
    assert "Apply generation 2" in html
    assert _counts() == before  # planning stores nothing


def test_plan_shows_out_of_band_changes_it_will_revert(client, alice, setup, applied):
    with setup.client() as kube:
        kube.custom.patch_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", "fraud", "inferenceservices", "scorer",
            {"spec": {"predictor": {"minReplicas": 2}}})
    client.force_login(alice)

    _, page = _plan_for_edit(client, applied, max_replicas=3)

    html = page.content.decode()
    assert "-    minReplicas: 2" in html and "+    minReplicas: 1" in html


def test_dry_run_rejection_is_shown_with_its_causes_and_blocks_the_apply(client, alice, setup, applied):
    # An admin-defined profile with a misspelt toleration field: the console's rules pass it (the
    # toleration still matches the GPU nodes' taint), the API server refuses the unknown field.
    HardwareProfile.objects.filter(pk=setup.profile.pk).update(
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule", "tolerationSecond": 30}])
    client.force_login(alice)

    _, page = _plan_for_edit(client, applied, hardware_profile=setup.profile.pk, accelerator_count=1)

    html = page.content.decode()
    assert "Dry run rejected" in html
    assert "spec.predictor.tolerations[0].tolerationSecond" in html
    assert "Apply generation" not in html


def test_plan_says_when_the_cluster_is_unreachable(client, alice):
    setup = deploy_setup(actor=alice, project_name="offline")  # a cluster nothing listens for
    grant(alice, setup.project, "view", "deploy")
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1)
    client.force_login(alice)

    _, page = _plan_for_edit(client, endpoint, max_replicas=3)

    html = page.content.decode()
    assert "Cluster unreachable" in html
    assert "Apply generation 2" in html  # the change is stored and reconciled when the cluster is back


def test_plan_warns_about_the_accelerator_shortfall(client, alice, setup, applied):
    endpoint_create(actor=alice, project=setup.project, name="other-gpu", model_version=setup.v1,
                    hardware_profile=setup.profile, accelerator_count=2, max_replicas=1)
    client.force_login(alice)

    # 1 GPU × 2 replicas + 1 GPU of rollout surge, beside the 2 other endpoints hold, on 4.
    _, page = _plan_for_edit(client, applied, hardware_profile=setup.profile.pk, accelerator_count=1)

    html = page.content.decode()
    assert "Warning:" in html
    assert "short by 1" in html
    assert "<strong>1 short</strong>" in html


def test_api_plan_reports_the_shortfall_live_diff_and_verdict_and_stores_nothing(alice, setup, applied):
    endpoint_create(actor=alice, project=setup.project, name="other-gpu", model_version=setup.v1,
                    hardware_profile=setup.profile, accelerator_count=2, max_replicas=1)
    api = APIClient()
    api.force_authenticate(alice)
    before = _counts()

    response = api.post(reverse("endpoint-plan", kwargs={"pk": applied.pk}),
                        {"hardware_profile": setup.profile.pk, "accelerator_count": 1}, format="json")

    assert response.status_code == 200, response.content
    plan = response.json()
    assert plan["dry_run"]["ok"] is True
    assert plan["live"]["exists"] is True
    assert "+          nvidia.com/gpu: '1'" in plan["live"]["diff"]
    assert "+      nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB" in plan["live"]["diff"]
    accelerators = plan["accelerators"]
    assert (accelerators["at_max"], accelerators["surge"], accelerators["capacity"]) == (2, 1, 4)
    assert accelerators["used_elsewhere"] == 2 and accelerators["shortfall"] == 1
    assert any("short by 1" in w for w in plan["warnings"])
    assert plan["generation"] == 2 and plan["restart"]["required"] is True
    assert _counts() == before


def test_api_plan_for_a_new_endpoint_dry_runs_it_and_stores_nothing(alice, setup):
    api = APIClient()
    api.force_authenticate(alice)
    # The cluster was read before (the first reading of a cluster stores it and lists the runtimes
    # installed there outside the console in the catalog, audited).
    cluster_discover(cluster=setup.cluster)
    before = _counts()

    response = api.post(reverse("endpoint-plan-create"), {
        "project": setup.project.pk, "name": "fresh", "model_version": setup.v1.pk, "protocol": "v2"}, format="json")

    assert response.status_code == 200, response.content
    plan = response.json()
    assert plan["is_new"] is True and plan["live"]["exists"] is False
    assert plan["dry_run"]["ok"] is True
    assert plan["manifest"]["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
    assert setup.live_isvc("fresh") is None
    assert _counts() == before


def test_api_plan_refuses_an_invalid_change_with_the_service_message(alice, setup, applied):
    api = APIClient()
    api.force_authenticate(alice)

    response = api.post(reverse("endpoint-plan", kwargs={"pk": applied.pk}), {"deployment_mode": "Standard"},
                        format="json")

    assert response.status_code == 400
    assert "refuses to change" in response.json()["errors"]["deployment_mode"][0]


def test_canary_plan_shows_the_traffic_it_moves(client, alice, setup, applied):
    client.force_login(alice)
    url = reverse("endpoints:endpoint-canary", kwargs={"project": "fraud", "name": "scorer"})

    response = client.post(url, {"canary_version": setup.v2.pk, "canary_traffic_percent": 10})

    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert "10% of requests go to v2, 90% to the previously rolled-out revision" in html
    assert "canaryTrafficPercent: 10" in html


def test_confirm_is_refused_when_the_endpoint_changed_since_the_review(
        client, alice, setup, applied, django_capture_on_commit_callbacks):
    client.force_login(alice)
    plan_url, page = _plan_for_edit(client, applied, max_replicas=4)
    assert "Apply generation 2" in page.content.decode()
    # Someone else changes the endpoint while the plan is open.
    endpoint_update(actor=alice, endpoint=applied, timeout_seconds=120)

    refused = client.post(plan_url, {"generation": "1"}, follow=True)

    applied.refresh_from_db()
    assert applied.generation == 2 and applied.max_replicas == 2
    html = refused.content.decode()
    assert "The endpoint changed since you reviewed this plan" in html
    assert "recomputed against its current state" in html
    assert "Apply generation 3" in html  # re-planned against generation 2

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(plan_url, {"generation": "2"})

    assert confirmed.status_code == 302
    applied.refresh_from_db()
    assert (applied.generation, applied.max_replicas, applied.timeout_seconds) == (3, 4, 120)
    live = setup.live_isvc("scorer")
    assert live["spec"]["predictor"]["maxReplicas"] == 4 and live["spec"]["predictor"]["timeout"] == 120
    # A confirmed plan cannot be replayed.
    assert client.post(plan_url, {"generation": "3"}).status_code == 404
