"""List filters (``endpoints/filtersets.py``): one FilterSet per list, shared by the page and
the API. They narrow rows the chokepoint already scoped; the API answers a bad value with 400
and the field's message, a page shows the message beside the field and ignores that filter."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from endpoints.api.endpoint import EndpointViewSet
from endpoints.api.registry import ModelVersionViewSet, RegisteredModelViewSet
from endpoints.filtersets import EndpointFilterSet, ModelVersionFilterSet, RegisteredModelFilterSet
from endpoints.views.endpoint import EndpointListView
from endpoints.views.registry import ModelListView
from tests.endpoints.endpoint_factories import (
    EndpointFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
    grant,
)

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def fleet(alice):
    fraud, ops, hidden = ProjectFactory(name="fraud"), ProjectFactory(name="ops"), ProjectFactory(name="hidden")
    grant(alice, fraud, "view")
    grant(alice, ops, "view")
    EndpointFactory(project=fraud, name="alpha", status={"phase": "Ready"})
    EndpointFactory(project=fraud, name="beta", status={"phase": "Failed"}, state="stopped")
    EndpointFactory(project=ops, name="gamma", status={"phase": "Ready"})
    EndpointFactory(project=hidden, name="secret", status={"phase": "Ready"})
    return {"fraud": fraud, "ops": ops, "hidden": hidden}


def test_the_page_and_the_api_share_one_filterset_per_list():
    assert EndpointListView.filterset_class is EndpointViewSet.filterset_class is EndpointFilterSet
    assert ModelListView.filterset_class is RegisteredModelViewSet.filterset_class is RegisteredModelFilterSet
    assert ModelVersionViewSet.filterset_class is ModelVersionFilterSet


def test_a_bad_phase_or_state_is_a_400_with_the_fields_message_in_the_api(alice, fleet):
    api = _api(alice)
    response = api.get("/api/v1/endpoints/", {"phase": "Sleeping"})
    assert response.status_code == 400
    assert "Sleeping is not one of the available choices" in response.json()["errors"]["phase"][0]
    assert api.get("/api/v1/endpoints/", {"state": "paused"}).json()["errors"]["state"]
    names = {e["name"] for e in api.get("/api/v1/endpoints/", {"state": "stopped"}).json()["results"]}
    assert names == {"beta"}


def test_a_detail_url_ignores_the_lists_filters(alice, fleet):
    endpoint = fleet["fraud"].endpoints.get(name="alpha")
    response = _api(alice).get(f"/api/v1/endpoints/{endpoint.pk}/", {"phase": "Failed", "search": "zzz"})
    assert response.status_code == 200 and response.json()["name"] == "alpha"


def test_a_project_the_caller_cannot_see_matches_nothing_by_name_or_id(alice, fleet):
    api = _api(alice)
    for value in ("hidden", fleet["hidden"].pk, "no-such-project"):
        response = api.get("/api/v1/endpoints/", {"project": value})
        assert response.status_code == 200 and response.json()["count"] == 0
    assert {e["name"] for e in api.get("/api/v1/endpoints/", {"project": fleet["ops"].pk}).json()["results"]} \
        == {"gamma"}


def test_the_page_shows_a_bad_value_beside_its_field_and_ignores_that_filter(client, alice, fleet):
    client.force_login(alice)
    response = client.get(reverse("endpoints:endpoint-list"), {"phase": "Sleeping", "search": "a"})
    assert response.status_code == 200
    assert "Sleeping is not one of the available choices" in response.text
    # The search still applies; the bad phase does not.
    assert {e.name for e in response.context["object_list"]} == {"alpha", "beta", "gamma"}
    # The page offers only its own filters, and only the projects the user can see.
    form = response.context["filter_form"]
    assert list(form.fields) == ["search", "project", "phase"]
    assert [p.name for p in form.fields["project"].queryset] == ["fraud", "ops"]


def test_the_version_list_takes_a_model_id_and_says_so_otherwise(alice):
    project = ProjectFactory(name="fraud")
    grant(alice, project, "view")
    model = RegisteredModelFactory(project=project)
    ModelVersionFactory(model=model)
    ModelVersionFactory(model=RegisteredModelFactory(project=project))
    api = _api(alice)
    assert api.get("/api/v1/versions/", {"model": model.pk}).json()["count"] == 1
    bad = api.get("/api/v1/versions/", {"model": "fraud-model"})
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"model": ["Give the model's id."]}


def test_a_project_filter_of_odd_digits_is_no_server_error(alice, fleet):
    assert _api(alice).get("/api/v1/endpoints/", {"project": "²"}).json()["count"] == 0
