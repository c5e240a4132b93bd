"""A new list view and a new API viewset written the default way — nothing but a model or a
queryset (and a serializer) — are scoped by the chokepoint without calling it: the base classes
(``console.views.base``, ``console.api.viewsets``) do it. This module defines such a page and
such a viewset over endpoints, routes them with its own URLconf and checks who sees what.
Opting out is explicit: overriding ``get_queryset`` is refused unless the class says why, and a
model without an access rule is refused rather than shown unscoped."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.urls import include, path
from django.utils import timezone
from rest_framework import serializers

from console.access import grants
from console.api.viewsets import ProtectedReadOnlyViewSet
from console.permissions import restrict
from console.views.base import ProtectedDetailView, ProtectedListView
from endpoints.models import Endpoint
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


# --- a page and a viewset written the default way -----------------------------------------------

class NewEndpointListView(ProtectedListView):
    model = Endpoint
    template_name = "generic/list.html"


class NewEndpointDetailView(ProtectedDetailView):
    model = Endpoint
    template_name = "generic/detail.html"


class NewEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Endpoint
        fields = ["id", "name"]


class NewEndpointViewSet(ProtectedReadOnlyViewSet):
    queryset = Endpoint.objects.all()
    serializer_class = NewEndpointSerializer


class UnruledListView(ProtectedListView):
    """A model nobody wrote an access rule for."""

    model = ContentType
    template_name = "generic/list.html"


urlpatterns = [
    path("chokepoint/endpoints/", NewEndpointListView.as_view()),
    path("chokepoint/endpoints/<int:pk>/", NewEndpointDetailView.as_view()),
    path("chokepoint/api/endpoints/", NewEndpointViewSet.as_view({"get": "list"})),
    path("chokepoint/api/endpoints/<int:pk>/", NewEndpointViewSet.as_view({"get": "retrieve"})),
    path("chokepoint/content-types/", UnruledListView.as_view()),
    # The whole console, so that base.html finds the routes its navigation names.
    path("", include("console.portal.urls")),
]


# --- who sees what ---------------------------------------------------------------------------------

@pytest.fixture
def world():
    """Two tenants: fraud (two endpoints) and churn (one)."""
    fraud, _ = project_with_model("fraud")
    churn, _ = project_with_model("churn")
    return {"fraud": fraud, "scorer": endpoint_in(fraud, "scorer"), "ranker": endpoint_in(fraud, "ranker"),
            "churn": churn, "churner": endpoint_in(churn, "churner")}


def _page_names(client) -> set[str]:
    response = client.get("/chokepoint/endpoints/")
    assert response.status_code == 200
    return {endpoint.name for endpoint in response.context["object_list"]}


def _api_names(client) -> set[str]:
    response = client.get("/chokepoint/api/endpoints/")
    assert response.status_code == 200
    return {row["name"] for row in response.json()["results"]}


def test_outsider_sees_no_rows_and_gets_404_on_detail(client, outsider, world):
    client.force_login(outsider)
    assert _page_names(client) == set()
    assert _api_names(client) == set()
    assert client.get(f"/chokepoint/endpoints/{world['scorer'].pk}/").status_code == 404
    assert client.get(f"/chokepoint/api/endpoints/{world['scorer'].pk}/").status_code == 404


def test_a_user_granted_on_a_project_sees_exactly_its_endpoints(client, alice, world):
    grants.grant_create(actor=None, role="viewer", target=world["fraud"], user=alice, reason="on the team")
    client.force_login(alice)
    assert _page_names(client) == {"scorer", "ranker"}
    assert _api_names(client) == {"scorer", "ranker"}
    assert client.get(f"/chokepoint/endpoints/{world['scorer'].pk}/").status_code == 200
    assert client.get(f"/chokepoint/api/endpoints/{world['scorer'].pk}/").json()["name"] == "scorer"
    # The other tenant's endpoint exists, and is a 404 all the same.
    assert client.get(f"/chokepoint/endpoints/{world['churner'].pk}/").status_code == 404
    assert client.get(f"/chokepoint/api/endpoints/{world['churner'].pk}/").status_code == 404


def test_a_platform_admin_sees_every_endpoint(client, admin_user, world):
    client.force_login(admin_user)
    assert _page_names(client) == _api_names(client) == {"scorer", "ranker", "churner"}


def test_an_expired_grant_sees_nothing(client, alice, world):
    expiry = timezone.now() + timedelta(hours=1)
    grants.grant_create(actor=None, role="viewer", target=world["fraud"], user=alice, reason="one hour",
                        expires_at=expiry)
    client.force_login(alice)
    with time_machine.travel(expiry - timedelta(minutes=1), tick=False):
        assert _api_names(client) == {"scorer", "ranker"}
    with time_machine.travel(expiry + timedelta(seconds=1), tick=False):
        assert _page_names(client) == set()
        assert _api_names(client) == set()
        assert client.get(f"/chokepoint/endpoints/{world['scorer'].pk}/").status_code == 404
        assert client.get(f"/chokepoint/api/endpoints/{world['scorer'].pk}/").status_code == 404


def test_a_list_filter_only_narrows_what_the_chokepoint_let_through(client, alice, world):
    """``filter_queryset`` runs after the scoping: no filter can reach another tenant's rows."""

    class SearchView(NewEndpointListView):
        def filter_queryset(self, queryset):
            return queryset.filter(name__startswith=self.request.GET.get("q", ""))

    grants.grant_create(actor=None, role="viewer", target=world["fraud"], user=alice, reason="on the team")
    client.force_login(alice)
    request = client.get("/chokepoint/endpoints/", {"q": "ch"}).wsgi_request
    view = SearchView()
    view.setup(request)
    assert list(view.get_queryset()) == []  # "churner" matches the filter but is not alice's
    view.setup(client.get("/chokepoint/endpoints/", {"q": "sc"}).wsgi_request)
    assert [e.name for e in view.get_queryset()] == ["scorer"]


# --- opting out is explicit ------------------------------------------------------------------------

def test_overriding_get_queryset_without_saying_why_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match="chokepoint"):
        class SneakyListView(ProtectedListView):
            model = Endpoint

            def get_queryset(self):
                return Endpoint.objects.all()

    with pytest.raises(TypeError, match="chokepoint"):
        class SneakyViewSet(ProtectedReadOnlyViewSet):
            serializer_class = NewEndpointSerializer

            def get_queryset(self):
                return Endpoint.objects.all()


def test_an_exemption_names_its_reason():
    class HealthListView(ProtectedListView):
        model = Endpoint
        chokepoint_exempt = "counts every endpoint for the liveness probe; shows no row"

        def get_queryset(self):
            return Endpoint.objects.all()

    assert HealthListView.chokepoint_exempt


def test_a_model_without_an_access_rule_is_refused_not_shown(client, admin_user, alice):
    with pytest.raises(ImproperlyConfigured, match="has no access rule"):
        restrict(ContentType.objects.all(), alice, "view")
    client.force_login(admin_user)  # not even a platform admin gets an unscoped list
    with pytest.raises(ImproperlyConfigured, match="has no access rule"):
        client.get("/chokepoint/content-types/")
