"""``/api/v1/endpoints/``: filtered before pagination, writes through the services with the
UI's validation messages, related fields restricted to what the caller may use."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints.models import Endpoint, HardwareProfile, Revision, ServingRuntime
from endpoints.services.endpoints import endpoint_create, endpoint_update
from tests.endpoints.endpoint_factories import (
    EndpointFactory,
    HardwareProfileFactory,
    ModelVersionFactory,
    ProjectFactory,
    deploy_setup,
    grant,
)

pytestmark = pytest.mark.django_db

LIST = "/api/v1/endpoints/"


def _detail(endpoint, suffix: str = "") -> str:
    return f"{LIST}{endpoint.pk}/{suffix}"


def _api(user=None) -> APIClient:
    api = APIClient()
    if user is not None:
        api.force_authenticate(user)
    return api


def _counts():
    return Endpoint.objects.count(), Revision.objects.count(), AuditEvent.objects.count()


@pytest.fixture
def setup(alice):
    setup = deploy_setup(actor=alice)
    grant(alice, setup.project, "view", "deploy")
    return setup


@pytest.fixture
def endpoint(setup, alice):
    return endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                           max_replicas=2)


def _create_body(setup, **overrides) -> dict:
    return {"project": setup.project.pk, "name": "api-scorer", "model_version": setup.v1.pk, **overrides}


def test_routes_have_the_documented_names():
    assert reverse("endpoint-list") == LIST
    assert reverse("endpoint-plan-create") == f"{LIST}plan/"
    assert reverse("endpoint-plan", kwargs={"pk": 7}) == f"{LIST}7/plan/"


def test_anonymous_caller_is_refused():
    response = _api().get(LIST)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- reads -----------------------------------------------------------------------------------

def test_list_contains_only_visible_endpoints(alice, outsider, setup, endpoint):
    EndpointFactory(name="hidden")
    assert [e["name"] for e in _api(alice).get(LIST).json()["results"]] == ["scorer"]
    assert _api(outsider).get(LIST).json()["count"] == 0


def test_list_filters_before_paginating(alice, setup):
    other = ProjectFactory(name="ops")
    grant(alice, other, "view")
    for index in range(3):
        EndpointFactory(project=setup.project, name=f"fraud-{index}", model_version=setup.v1,
                        status={"phase": "Ready" if index else "Failed"})
    EndpointFactory(project=other, name="ops-1", status={"phase": "Ready"})
    EndpointFactory(name="invisible", status={"phase": "Ready"})
    api = _api(alice)

    page = api.get(LIST, {"phase": "Ready", "page_size": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2
    assert {e["name"] for e in api.get(LIST, {"project": "ops"}).json()["results"]} == {"ops-1"}
    # The id every endpoint reports as "project" filters too.
    assert {e["name"] for e in api.get(LIST, {"project": other.pk}).json()["results"]} == {"ops-1"}
    assert {e["name"] for e in api.get(LIST, {"search": "fraud-2"}).json()["results"]} == {"fraud-2"}


@pytest.mark.parametrize("rows", [3, 30])
def test_list_query_count_does_not_grow_with_rows(alice, setup, rows, django_assert_max_num_queries):
    for index in range(rows):
        EndpointFactory(project=setup.project, name=f"ep-{index}", model_version=setup.v1,
                        hardware_profile=setup.profile, accelerator_count=1, canary_version=setup.v2,
                        canary_traffic_percent=5)
    api = _api(alice)
    with django_assert_max_num_queries(4):
        response = api.get(LIST)
    assert response.json()["count"] == rows


def test_retrieve_shows_desired_state_and_status(alice, outsider, endpoint):
    data = _api(alice).get(_detail(endpoint)).json()
    assert (data["name"], data["project_name"], data["model_version_number"], data["generation"]) == (
        "scorer", "fraud", 1, 1)
    assert data["status"]["phase"] == "Pending"
    assert _api(outsider).get(_detail(endpoint)).status_code == 404


def test_revisions_are_listed_newest_first(alice, endpoint):
    endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    data = _api(alice).get(_detail(endpoint, "revisions/")).json()
    assert [r["generation"] for r in data["results"]] == [2, 1]
    assert data["results"][0]["manifest"]["spec"]["predictor"]["maxReplicas"] == 3


# --- create ----------------------------------------------------------------------------------

def test_create_returns_201_with_the_created_endpoint(alice, setup):
    response = _api(alice).post(LIST, _create_body(setup, protocol="v2", env=[{"name": "A", "value": "1"}]),
                                format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    endpoint = Endpoint.objects.get(pk=data["id"])
    assert (data["name"], data["protocol"], data["generation"], data["env"]) == (
        "api-scorer", "v2", 1, [{"name": "A", "value": "1"}])
    assert endpoint.revisions.count() == 1
    assert AuditEvent.objects.filter(action="endpoint.create", target_id=str(endpoint.pk)).exists()


def _unusable(field: str, alice):
    """An object of ``field``'s kind that alice may not attach."""
    if field in ("model_version", "canary_version"):
        return ModelVersionFactory().pk  # in a project she cannot see
    if field == "project":
        project = ProjectFactory(name="foreign")
        grant(alice, project, "view")  # visible, but no deploy
        return project.pk
    if field == "hardware_profile":
        return HardwareProfileFactory(name="retired", enabled=False).pk
    runtime = ServingRuntime.objects.get(name="kserve-xgbserver")
    ServingRuntime.objects.filter(pk=runtime.pk).update(disabled=True)
    return runtime.pk


@pytest.mark.parametrize("field", ["model_version", "canary_version", "project", "hardware_profile", "runtime"])
def test_attaching_an_object_the_caller_may_not_use_is_a_400_on_that_field(alice, setup, field):
    unusable = _unusable(field, alice)
    before = _counts()

    response = _api(alice).post(LIST, _create_body(setup, **{field: unusable}), format="json")

    assert response.status_code == 400
    assert "that you may use" in response.json()["errors"][field][0]
    assert _counts() == before


def test_api_reports_the_same_rule_messages_as_the_wizard(client, alice, setup):
    body = _create_body(setup, deployment_mode="Standard", min_replicas=0, name="Bad_Name")
    api_errors = _api(alice).post(LIST, body, format="json").json()["errors"]

    client.force_login(alice)
    form = client.post(reverse("endpoints:endpoint-create"), {
        **body, "protocol": "v1", "max_replicas": 1, "accelerator_count": 0, "logging_mode": "all"}).context["form"]

    assert api_errors["min_replicas"] == form.errors["min_replicas"]
    assert api_errors["name"] == form.errors["name"]


@pytest.mark.parametrize(("overrides", "field", "fragment"), [
    ({"protocol": "openai"}, "protocol", "never a protocolVersion value"),
    ({"hardware_profile": "profile", "accelerator_count": 99}, "accelerator_count", "exceeds the 4"),
    ({"deployment_mode": "Standard", "canary_version": "v2", "canary_traffic_percent": 10}, "canary_version",
     "need Knative mode"),
    ({"name": "x" * 46}, "name", "the limit is 45"),
    ({"env": [{"name": "PYTHONPATH", "value": "/tmp"}]}, "env", "PYTHONPATH cannot be set"),
])
def test_careless_and_hostile_payloads_get_clear_errors(alice, setup, overrides, field, fragment):
    if overrides.get("hardware_profile") == "profile":
        overrides["hardware_profile"] = setup.profile.pk
    if overrides.get("canary_version") == "v2":
        overrides["canary_version"] = setup.v2.pk
    before = _counts()

    response = _api(alice).post(LIST, _create_body(setup, **overrides), format="json")

    assert response.status_code == 400
    assert fragment in " ".join(response.json()["errors"][field])
    assert _counts() == before


# --- update, delete and actions ----------------------------------------------------------------

def test_patch_applies_through_the_service(alice, endpoint):
    response = _api(alice).patch(_detail(endpoint), {"max_replicas": 4, "description": "cards"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["generation"], response.json()["max_replicas"]) == (2, 4)
    assert AuditEvent.objects.filter(action="endpoint.update", target_id=str(endpoint.pk)).count() == 1


def test_put_is_not_offered(alice, endpoint):
    assert _api(alice).put(_detail(endpoint), {"max_replicas": 4}, format="json").status_code == 405


def test_viewer_may_read_but_not_change(bob, setup, endpoint):
    grant(bob, setup.project, "view")
    api = _api(bob)
    assert api.get(_detail(endpoint)).status_code == 200
    assert api.patch(_detail(endpoint), {"max_replicas": 4}, format="json").status_code == 403
    for action in ("stop/", "promote/", "plan/"):
        assert api.post(_detail(endpoint, action), {}, format="json").status_code == 403
    assert api.delete(_detail(endpoint)).status_code == 403


def test_outsider_gets_404_on_every_write(outsider, endpoint):
    api = _api(outsider)
    assert api.patch(_detail(endpoint), {"max_replicas": 4}, format="json").status_code == 404
    assert api.post(_detail(endpoint, "rollback/"), {"generation": 1}, format="json").status_code == 404
    assert api.delete(_detail(endpoint)).status_code == 404


def test_delete_is_accepted_and_marks_the_endpoint(alice, endpoint):
    response = _api(alice).delete(_detail(endpoint))
    assert response.status_code == 202
    assert response.json()["state"] == "deleting"


def test_rollback_stop_start_and_promote(alice, setup, endpoint):
    api = _api(alice)
    api.patch(_detail(endpoint), {"canary_version": setup.v2.pk, "canary_traffic_percent": 10}, format="json")

    promoted = api.post(_detail(endpoint, "promote/")).json()
    assert (promoted["model_version"], promoted["canary_version"], promoted["generation"]) == (setup.v2.pk, None, 3)

    rolled = api.post(_detail(endpoint, "rollback/"), {"generation": 1}, format="json").json()
    assert (rolled["model_version"], rolled["generation"]) == (setup.v1.pk, 4)
    missing = api.post(_detail(endpoint, "rollback/"), {"generation": 99}, format="json")
    assert missing.status_code == 400 and "generation" in missing.json()["errors"]

    assert api.post(_detail(endpoint, "stop/")).json()["state"] == "stopped"
    assert api.post(_detail(endpoint, "start/")).json()["state"] == "active"
    assert api.post(_detail(endpoint, "promote/")).status_code == 400  # no canary any more


def test_disabled_profile_of_the_endpoint_stays_usable_on_patch(alice, setup):
    endpoint = endpoint_create(actor=alice, project=setup.project, name="gpu", model_version=setup.v1,
                               hardware_profile=setup.profile, accelerator_count=1)
    HardwareProfile.objects.filter(pk=setup.profile.pk).update(enabled=False)
    response = _api(alice).patch(_detail(endpoint), {"hardware_profile": setup.profile.pk, "max_replicas": 2},
                                 format="json")
    assert response.status_code == 200, response.content
