"""Hardware profiles' defaults and bounds: the default CPU and memory become the requests (and
limits where the profile says so) of the manifests the console applies, the wizard prefills and
bounds them, the API fills and bounds them, an admin cannot save a default above the maximum,
and a GPU profile requests at least one GPU. Endpoints that existed before keep their manifest
until they are next changed, and the plan of that change shows the resources appearing."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from endpoints.models import Endpoint, HardwareProfile
from endpoints.services import endpoints as endpoint_services
from endpoints.services.endpoints import endpoint_create, endpoint_update
from endpoints.services.platform import hardware_profile_create
from endpoints.services.reconciler import reconcile_cluster
from tests.endpoints.endpoint_factories import deploy_setup, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(alice):
    setup = deploy_setup(actor=alice)
    grant(alice, setup.project, "view", "deploy")
    return setup


@pytest.fixture
def live_setup(alice, fake_apiserver):
    setup = deploy_setup(actor=alice, api_url=fake_apiserver.url)
    grant(alice, setup.project, "view", "deploy")
    return setup


@pytest.fixture
def cpu_profile():
    return hardware_profile_create(actor=None, name="cpu-small", display_name="CPU small", default_cpu="500m",
                                   default_memory="1Gi", max_cpu="2", max_memory="4Gi")


def _resources(endpoint: Endpoint) -> dict:
    manifest = endpoint.revisions.get(generation=endpoint.generation).manifest
    return manifest["spec"]["predictor"]["model"].get("resources", {})


def _api(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


# --- defaults in the applied manifest ---------------------------------------------------------------

def test_profile_defaults_become_the_requests_of_the_applied_manifest(
        alice, live_setup, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=live_setup.project, name="scorer",
                                   model_version=live_setup.v1, hardware_profile=live_setup.profile,
                                   accelerator_count=1)

    # The A100 factory profile: 1 CPU and 2Gi by default (the model's defaults).
    assert (endpoint.cpu_request, endpoint.memory_request) == ("1", "2Gi")
    resources = live_setup.live_isvc("scorer")["spec"]["predictor"]["model"]["resources"]
    assert resources["requests"] == {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}
    assert resources["limits"] == {"nvidia.com/gpu": "1"}


def test_a_profile_that_says_so_applies_its_defaults_as_limits_too(alice, setup, cpu_profile):
    HardwareProfile.objects.filter(pk=cpu_profile.pk).update(defaults_as_limits=True)
    cpu_profile.refresh_from_db()

    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                               hardware_profile=cpu_profile)

    assert _resources(endpoint) == {"requests": {"cpu": "500m", "memory": "1Gi"},
                                    "limits": {"cpu": "500m", "memory": "1Gi"}}


def test_a_default_request_above_the_runtimes_default_limit_gets_a_matching_limit(alice, setup):
    # sklearn's runtime container has a 1 CPU / 2Gi limit of its own: a 4 CPU / 8Gi default request
    # without a limit would be a pod Kubernetes refuses.
    big = hardware_profile_create(actor=None, name="cpu-big", display_name="CPU big", default_cpu="4",
                                  default_memory="8Gi", max_cpu="8", max_memory="16Gi")

    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                               hardware_profile=big)

    assert _resources(endpoint) == {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}


def test_values_the_user_sets_win_over_the_defaults(alice, setup, cpu_profile):
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                               hardware_profile=cpu_profile, cpu_request="250m", memory_limit="3Gi")

    assert _resources(endpoint) == {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}}


def test_without_a_profile_nothing_is_added(alice, setup):
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1)

    assert _resources(endpoint) == {}


def test_switching_profiles_replaces_the_old_profiles_defaults(alice, setup, cpu_profile):
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                               hardware_profile=setup.profile, accelerator_count=1)
    assert (endpoint.cpu_request, endpoint.memory_request) == ("1", "2Gi")

    endpoint_update(actor=alice, endpoint=endpoint, hardware_profile=cpu_profile, accelerator_count=0)

    endpoint.refresh_from_db()
    assert (endpoint.cpu_request, endpoint.memory_request) == ("500m", "1Gi")
    endpoint_update(actor=alice, endpoint=endpoint, hardware_profile=None)
    endpoint.refresh_from_db()
    assert (endpoint.cpu_request, endpoint.memory_request) == ("", "")


# --- GPU profiles need a GPU ------------------------------------------------------------------------

def test_a_gpu_profile_with_no_accelerator_is_refused(alice, setup):
    with pytest.raises(ValidationError) as refused:
        endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                        hardware_profile=setup.profile, accelerator_count=0)

    assert "request at least 1 per replica" in refused.value.message_dict["accelerator_count"][0]
    assert not Endpoint.objects.exists()


def test_api_refuses_zero_accelerators_on_a_gpu_profile_and_defaults_an_omitted_count_to_one(alice, setup):
    api = _api(alice)
    data = {"project": setup.project.pk, "name": "scorer", "model_version": setup.v1.pk,
            "hardware_profile": setup.profile.pk}

    refused = api.post(reverse("endpoint-list"), {**data, "accelerator_count": 0}, format="json")
    created = api.post(reverse("endpoint-list"), data, format="json")

    assert refused.status_code == 400
    assert "request at least 1 per replica" in refused.json()["errors"]["accelerator_count"][0]
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["accelerator_count"] == 1
    assert (body["cpu_request"], body["memory_request"]) == ("1", "2Gi")


def test_api_refuses_a_request_above_the_profiles_maximum(alice, setup, cpu_profile):
    response = _api(alice).post(reverse("endpoint-list"), {
        "project": setup.project.pk, "name": "scorer", "model_version": setup.v1.pk,
        "hardware_profile": cpu_profile.pk, "cpu_request": "3"}, format="json")

    assert response.status_code == 400
    assert "exceeds the 2 that hardware profile cpu-small allows" in response.json()["errors"]["cpu_request"][0]


# --- the wizard ---------------------------------------------------------------------------------------

def _input(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, name
    return match.group(0)


def test_wizard_prefills_and_bounds_the_hardware_section_from_the_chosen_profile(client, alice, setup):
    client.force_login(alice)

    html = client.get(reverse("endpoints:endpoint-create"), {"hardware_profile": setup.profile.pk}).content.decode()

    count = _input(html, "accelerator_count")
    assert 'value="1"' in count and 'min="1"' in count and 'max="4"' in count
    assert 'value="1"' in _input(html, "cpu_request") and 'value="2Gi"' in _input(html, "memory_request")
    assert "at most 16" in html and "at most 64Gi" in html
    assert f'<option value="{setup.profile.pk}" selected>' in html
    # Choosing a profile asks for this section again.
    assert 'hx-select="#section-hardware"' in html and 'id="section-hardware"' in html


def test_wizard_without_a_profile_offers_no_accelerator(client, alice, setup):
    client.force_login(alice)

    html = client.get(reverse("endpoints:endpoint-create"), {"hardware_profile": ""}).content.decode()

    count = _input(html, "accelerator_count")
    assert 'value="0"' in count and 'max="0"' in count
    assert 'value=' not in _input(html, "cpu_request") or 'value=""' in _input(html, "cpu_request")


def test_wizard_refuses_zero_accelerators_on_a_gpu_profile(client, alice, setup):
    client.force_login(alice)
    data = {
        "project": setup.project.pk, "name": "scorer", "description": "", "model_version": setup.v1.pk,
        "protocol": "v1", "runtime": "", "env": "", "args": "", "deployment_mode": "Knative", "min_replicas": 1,
        "max_replicas": 1, "scale_metric": "", "scale_target": "", "container_concurrency": "",
        "timeout_seconds": "", "hardware_profile": setup.profile.pk, "accelerator_count": 0, "cpu_request": "",
        "cpu_limit": "", "memory_request": "", "memory_limit": "", "canary_version": "",
        "canary_traffic_percent": "", "logging_mode": "all",
    }

    response = client.post(reverse("endpoints:endpoint-create"), data)

    assert response.status_code == 400
    assert "request at least 1 per replica" in response.context["form"].errors["accelerator_count"][0]


# --- existing endpoints --------------------------------------------------------------------------------

def test_an_existing_endpoint_keeps_its_manifest_until_changed_and_the_plan_shows_the_resources(
        alice, live_setup, monkeypatch, django_capture_on_commit_callbacks):
    # Created before profiles' defaults were applied: no CPU or memory on the row or the object.
    with monkeypatch.context() as before_the_change:
        before_the_change.setattr(endpoint_services, "apply_profile_defaults", lambda *args, **kwargs: None)
        with django_capture_on_commit_callbacks(execute=True):
            endpoint = endpoint_create(actor=alice, project=live_setup.project, name="scorer",
                                       model_version=live_setup.v1, hardware_profile=live_setup.profile,
                                       accelerator_count=1)
    assert endpoint.cpu_request == ""

    with django_capture_on_commit_callbacks(execute=True):
        reconcile_cluster(cluster=live_setup.cluster)

    endpoint.refresh_from_db()
    assert endpoint.generation == 1 and endpoint.cpu_request == ""
    live = live_setup.live_isvc("scorer")["spec"]["predictor"]["model"]["resources"]
    assert live["requests"] == {"nvidia.com/gpu": "1"}

    response = _api(alice).post(reverse("endpoint-plan", kwargs={"pk": endpoint.pk}), {"max_replicas": 2},
                                format="json")

    assert response.status_code == 200, response.content
    plan = response.json()
    assert "+          cpu: '1'" in plan["live"]["diff"] and "+          memory: 2Gi" in plan["live"]["diff"]
    assert {c["path"] for c in plan["field_changes"]} >= {"resources.cpu_request", "resources.memory_request"}


# --- the admin saving a profile -------------------------------------------------------------------------

def _profile_form(**overrides) -> dict:
    data = {"name": "a100", "display_name": "NVIDIA A100", "description": "",
            "accelerator_resource": "nvidia.com/gpu", "accelerator_product": "NVIDIA-A100-SXM4-80GB",
            "node_selector": '{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}', "tolerations": "",
            "default_cpu": "4", "default_memory": "32Gi", "max_cpu": "16", "max_memory": "128Gi",
            "max_accelerators_per_replica": "4", "capacity": "8", "enabled": "on"}
    data.update(overrides)
    return data


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"default_cpu": "32"}, "default_cpu", "The default CPU 32 is above the profile's maximum 16"),
    ({"default_memory": "256Gi"}, "default_memory", "The default memory 256Gi is above the profile's maximum 128Gi"),
    ({"max_accelerators_per_replica": "0"}, "max_accelerators_per_replica", "requests at least 1 per replica"),
    ({"accelerator_resource": ""}, "accelerator_resource", "without it the pods would be placed on those nodes"),
])
def test_admin_page_refuses_a_profile_whose_defaults_or_accelerator_make_no_sense(
        admin_client, overrides, field, message):
    response = admin_client.post(reverse("endpoints:hardware-create"), _profile_form(**overrides))

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not HardwareProfile.objects.exists()


def test_admin_page_saves_defaults_as_limits(admin_client):
    response = admin_client.post(reverse("endpoints:hardware-create"), _profile_form(defaults_as_limits="on"))

    assert response.status_code == 302
    assert HardwareProfile.objects.get(name="a100").defaults_as_limits is True


def test_api_refuses_a_default_above_the_maximum_with_a_field_message(admin_user):
    api = _api(admin_user)

    response = api.post("/api/v1/hardware-profiles/", {
        "name": "cpu-small", "display_name": "CPU small", "default_cpu": "4", "max_cpu": "2"}, format="json")
    ok = api.post("/api/v1/hardware-profiles/", {
        "name": "cpu-small", "display_name": "CPU small", "default_cpu": "1", "max_cpu": "2",
        "defaults_as_limits": True}, format="json")

    assert response.status_code == 400
    assert "above the profile's maximum 2" in response.json()["errors"]["default_cpu"][0]
    assert ok.status_code == 201 and ok.json()["defaults_as_limits"] is True


@pytest.mark.parametrize("value", ["99999999999999999999999", "x", "-1"])
def test_wizard_ignores_a_profile_or_project_id_that_is_no_id(client, alice, setup, value):
    client.force_login(alice)

    page = client.get(reverse("endpoints:endpoint-create"), {"hardware_profile": value, "project": value})
    posted = client.post(reverse("endpoints:endpoint-create"), {"hardware_profile": value, "project": value})

    assert page.status_code == 200
    assert posted.status_code == 400 and posted.context["form"].errors["project"]


def test_an_endpoint_from_before_the_gpu_rule_can_still_be_promoted_and_rolled_back(alice, setup):
    # Saved with 0 accelerators on the A100 profile before the rule existed (written directly,
    # as the old code allowed): an edit must fix it, but promote and rollback keep working.
    endpoint = endpoint_create(actor=alice, project=setup.project, name="legacy", model_version=setup.v1,
                               hardware_profile=setup.profile, accelerator_count=1)
    endpoint_update(actor=alice, endpoint=endpoint, canary_version=setup.v2, canary_traffic_percent=10)
    Endpoint.objects.filter(pk=endpoint.pk).update(accelerator_count=0)
    endpoint.refresh_from_db()
    first = endpoint.revisions.get(generation=1)
    with pytest.raises(ValidationError) as refused:
        endpoint_update(actor=alice, endpoint=endpoint, max_replicas=2)
    assert "request at least 1 per replica" in refused.value.message_dict["accelerator_count"][0]

    endpoint = endpoint_services.endpoint_promote_canary(actor=alice, endpoint=endpoint)
    assert endpoint.model_version_id == setup.v2.pk and endpoint.accelerator_count == 0
    promoted = endpoint.revisions.order_by("-generation").first()
    assert promoted.spec["hardware"]["accelerator_count"] == 0
    endpoint = endpoint_services.endpoint_rollback(actor=alice, endpoint=endpoint, revision=first)
    assert endpoint.model_version_id == setup.v1.pk and endpoint.accelerator_count == 1
    # Back to the promoted configuration, 0 accelerators and all: it ran, so it may run again.
    endpoint = endpoint_services.endpoint_rollback(actor=alice, endpoint=endpoint, revision=promoted)
    assert endpoint.model_version_id == setup.v2.pk and endpoint.accelerator_count == 0
