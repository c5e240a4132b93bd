"""The plan's manifest diff is a true diff of the live object's console-owned fields against
the new manifest: what server-side apply removes (a cleared field, a promoted or removed canary,
a list item, a map key) shows as a ``-`` line, not only what it adds or changes."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from endpoints import plan as plans
from endpoints import reconcile
from endpoints.services.endpoints import endpoint_create, endpoint_set_state, endpoint_update
from tests.endpoints.endpoint_factories import deploy_setup, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(alice, fake_apiserver):
    setup = deploy_setup(actor=alice, api_url=fake_apiserver.url, capacity=4, quota=None)
    grant(alice, setup.project, "view", "deploy")
    return setup


def _applied(setup, alice, capture, **config):
    with capture(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                                   max_replicas=2, **config)
    assert setup.live_isvc("scorer") is not None
    return endpoint


def _with_canary(setup, alice, capture):
    endpoint = _applied(setup, alice, capture)
    with capture(execute=True):
        endpoint_update(actor=alice, endpoint=endpoint, canary_version=setup.v2, canary_traffic_percent=10)
    assert setup.live_isvc("scorer")["spec"]["predictor"]["canaryTrafficPercent"] == 10
    endpoint.refresh_from_db()
    return endpoint


def _api_plan_diff(alice, endpoint, changes: dict) -> str:
    api = APIClient()
    api.force_authenticate(alice)
    response = api.post(reverse("endpoint-plan", kwargs={"pk": endpoint.pk}), changes, format="json")
    assert response.status_code == 200, response.content
    return response.json()["live"]["diff"]


def _page_plan(client, alice, endpoint, action: str) -> str:
    client.force_login(alice)
    url = reverse(f"endpoints:endpoint-{action}", kwargs={"project": endpoint.project.name, "name": endpoint.name})
    response = client.post(url)
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert page.status_code == 200
    return page.content.decode()


def test_plan_diff_shows_a_cleared_timeout_as_removed(alice, setup, django_capture_on_commit_callbacks):
    endpoint = _applied(setup, alice, django_capture_on_commit_callbacks, timeout_seconds=120)

    diff = _api_plan_diff(alice, endpoint, {"timeout_seconds": None})

    assert "-    timeout: 120" in diff
    assert "+    timeout" not in diff


def test_plan_diff_shows_canary_traffic_removed_when_the_canary_is_promoted(
        client, alice, setup, django_capture_on_commit_callbacks):
    endpoint = _with_canary(setup, alice, django_capture_on_commit_callbacks)

    html = _page_plan(client, alice, endpoint, "promote")

    assert "-    canaryTrafficPercent: 10" in html
    assert "+    canaryTrafficPercent" not in html


def test_plan_diff_shows_canary_traffic_removed_when_the_canary_is_removed(
        alice, setup, django_capture_on_commit_callbacks):
    endpoint = _with_canary(setup, alice, django_capture_on_commit_callbacks)

    diff = _api_plan_diff(alice, endpoint, {"canary_version": None, "canary_traffic_percent": None})

    assert "-    canaryTrafficPercent: 10" in diff
    # The canary's artifact leaves, the current version's comes back.
    assert "-      storageUri: s3://models/scorer/2" in diff
    assert "+      storageUri: s3://models/scorer/1" in diff


def test_plan_diff_shows_removed_list_items(alice, setup, django_capture_on_commit_callbacks):
    endpoint = _applied(setup, alice, django_capture_on_commit_callbacks, args=["--workers=2", "--verbose"])

    one_left = _api_plan_diff(alice, endpoint, {"args": ["--workers=2"]})
    none_left = _api_plan_diff(alice, endpoint, {"args": []})

    assert "-      - --verbose" in one_left and "-      - --workers=2" not in one_left
    assert "-      - --verbose" in none_left and "-      - --workers=2" in none_left
    assert "-      args:" in none_left


def test_plan_diff_shows_a_removed_map_key(client, alice, setup, django_capture_on_commit_callbacks):
    endpoint = _applied(setup, alice, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_set_state(actor=alice, endpoint=endpoint, stopped=True)
    assert setup.live_isvc("scorer")["metadata"]["annotations"]["serving.kserve.io/stop"] == "true"
    endpoint.refresh_from_db()

    html = _page_plan(client, alice, endpoint, "start")

    diff = html.split('aria-label="Unified diff')[1].split("</pre>")[0]
    assert "-    serving.kserve.io/stop: &#x27;true&#x27;" in diff


def test_plan_diff_shows_removed_node_selector_keys_of_a_dropped_profile(
        alice, setup, django_capture_on_commit_callbacks):
    endpoint = _applied(setup, alice, django_capture_on_commit_callbacks, hardware_profile=setup.profile,
                        accelerator_count=1)

    diff = _api_plan_diff(alice, endpoint, {"hardware_profile": None, "accelerator_count": 0})

    assert "-      nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB" in diff
    assert "-          nvidia.com/gpu: '1'" in diff


def test_fields_other_managers_own_are_not_in_the_diff():
    """Only what the console applied is compared: KServe's defaults and other managers' fields
    on the live object are not shown as removals."""
    manifest = {"spec": {"predictor": {"minReplicas": 1}}}
    live = {
        "metadata": {"managedFields": [
            {"manager": reconcile.FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:predictor": {"f:minReplicas": {}, "f:timeout": {},
                                                     "f:tolerations": {}}}}},
            {"manager": "kserve-controller", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:predictor": {"f:model": {"f:runtime": {}}}}}},
        ]},
        "spec": {"predictor": {"minReplicas": 1, "timeout": 30, "tolerations": [{"key": "a"}],
                               "model": {"runtime": "kserve-sklearnserver"}}},
    }

    owned = plans.live_owned_fields(live, manifest, old_manifest=None)

    assert owned == {"spec": {"predictor": {"minReplicas": 1, "timeout": 30, "tolerations": [{"key": "a"}]}}}


def test_without_managed_fields_the_previous_manifest_names_the_owned_fields():
    manifest = {"spec": {"predictor": {"minReplicas": 1}}}
    old_manifest = {"spec": {"predictor": {"minReplicas": 1, "timeout": 30}}}
    live = {"spec": {"predictor": {"minReplicas": 1, "timeout": 30, "containerConcurrency": 0}}}

    owned = plans.live_owned_fields(live, manifest, old_manifest=old_manifest)

    assert owned == {"spec": {"predictor": {"minReplicas": 1, "timeout": 30}}}
