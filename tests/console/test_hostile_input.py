"""Hostile input never ends in a 500: ids past the database's range or not numbers at all, in
paths and query strings, a kubeconfig that cannot be read; and every /api/ error is the API's
JSON body (unknown routes for any method, CSRF failures, server errors)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from console.ids import ID_MAX, parse_id
from endpoints.models import Cluster, Project
from tests.endpoints.endpoint_factories import (
    ClusterFactory,
    EndpointFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
)

pytestmark = pytest.mark.django_db

TOO_BIG = "99999999999999999999"  # past 2**63 - 1: SQLite's driver refuses it


@pytest.fixture
def world(admin_user, alice):
    from console.access import grants

    project = ProjectFactory(name="tenant", namespace="tenant")
    version = ModelVersionFactory(model=RegisteredModelFactory(project=project, name="scorer"), version=1)
    endpoint = EndpointFactory(project=project, name="scorer", model_version=version)
    grants.grant_create(actor=None, role="viewer", target=project, user=alice, reason="test")
    return {"project": project, "version": version, "endpoint": endpoint}


def _api(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    return client


def _page(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_parse_id_takes_only_whole_numbers_in_the_databases_range():
    assert parse_id("7") == 7 and parse_id(str(ID_MAX)) == ID_MAX
    for value in ("0", "-1", str(ID_MAX + 1), TOO_BIG, "AAA", "1e3", "²", "٣", " ", ""):
        assert parse_id(value) is None, value


@pytest.mark.parametrize(("path", "param"), [
    ("/api/v1/endpoints/", "project"), ("/api/v1/models/", "project"), ("/api/v1/connections/", "project"),
    ("/api/v1/versions/", "model"), ("/api/v1/grants/", "project"), ("/api/v1/grants/", "endpoint"),
    ("/api/v1/grants/", "model"), ("/api/v1/grants/", "user"), ("/api/v1/grants/", "team"),
    ("/api/v1/tokens/", "user"), ("/api/v1/identities/", "user"), ("/api/v1/access/check/", "user"),
])
@pytest.mark.parametrize("persona", ["admin_user", "alice"])
def test_an_id_past_the_databases_range_in_a_query_is_a_400_naming_the_field(world, request, path, param, persona):
    response = _api(request.getfixturevalue(persona)).get(path, {param: TOO_BIG})
    if response.status_code == 403:  # the admin-only lists refuse a Viewer before reading the query
        assert persona == "alice"
        return
    if persona == "alice" and path == "/api/v1/tokens/":  # ?user= is the admins' filter; others see their own
        assert response.status_code == 200
        return
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert param in body["errors"] and body["detail"].startswith(f"{param}: ")


@pytest.mark.parametrize("path", ["/endpoints/", "/models/"])
def test_an_id_past_the_range_in_a_page_filter_is_a_message_by_the_filter(world, alice, path):
    response = _page(alice).get(path, {"project": TOO_BIG})
    assert response.status_code == 200
    assert "Give an id: a whole number" in response.content.decode()


@pytest.mark.parametrize("value", [TOO_BIG, str(ID_MAX + 1), "AAA", "0"])
def test_a_path_id_that_is_no_id_is_a_404_on_pages(world, alice, value):
    for path in (f"/models/{value}/versions/new/", f"/access/users/{value}/", f"/audit/events/{value}/",
                 f"/access/models/{value}/"):
        assert _page(alice).get(path).status_code == 404, path


@pytest.mark.parametrize("value", [TOO_BIG, "AAA"])
def test_a_path_id_that_is_no_id_is_a_json_404_on_the_api(world, alice, value):
    for path in (f"/api/v1/models/{value}/versions/", f"/api/v1/endpoints/{value}/latency/",
                 f"/api/v1/endpoints/{value}/", f"/api/v1/grants/{value}/"):
        response = _api(alice).get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json" and "detail" in response.json()


def test_a_project_on_a_cluster_whose_kubeconfig_cannot_be_read_is_a_field_error(admin_user, tmp_path):
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [this is not: a kubeconfig\n")
    for path in (str(broken), str(tmp_path / "missing")):
        cluster = ClusterFactory(name=f"kc-{len(path)}", connection=Cluster.Connection.KUBECONFIG,
                                 kubeconfig_path=path, api_url="")
        response = _api(admin_user).post("/api/v1/projects/", {"name": "p-kc", "cluster": cluster.pk}, format="json")
        assert response.status_code == 400, response.content[:300]
        assert "could not be reached" in response.json()["errors"]["namespace"][0]
    assert not Project.objects.filter(name="p-kc").exists()


def test_an_enabled_cluster_with_an_unreadable_kubeconfig_is_refused_on_enabled(admin_user, tmp_path):
    response = _api(admin_user).post("/api/v1/clusters/", {
        "name": "kc-missing", "connection": "kubeconfig", "kubeconfig_path": str(tmp_path / "nope"),
        "ingress_domain": "example.com", "enabled": True}, format="json")
    assert response.status_code == 400 and "enabled" in response.json()["errors"]
    assert not Cluster.objects.filter(name="kc-missing").exists()


# --- every /api/ error is JSON -------------------------------------------------------------------

@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_unknown_api_routes_answer_a_json_404_for_every_method_even_without_a_csrf_token(alice, method):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = getattr(client, method)("/api/v1/no-such-route/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("No API route matches")


def test_a_method_a_route_does_not_take_is_a_json_405(alice):
    response = _api(alice).put("/api/v1/me/", {}, format="json")
    assert response.status_code == 405 and response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail", "errors"}


def test_a_csrf_failure_on_the_api_is_a_json_403_and_changes_nothing(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/api/v1/teams/", {"name": "csrf-team"}, content_type="application/json")
    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    assert "CSRF" in response.json()["detail"]
    from django.contrib.auth.models import Group

    assert not Group.objects.filter(name="csrf-team").exists()


def test_a_server_error_on_the_api_is_a_json_500_and_pages_keep_the_html_page(alice, monkeypatch):
    from console.access.api import me

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(me.CurrentUserView, "get", crash)
    response = _api(alice).get("/api/v1/me/")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail", "errors"} and "boom" not in response.content.decode()
    from console import views

    page = views.server_error(_request("/models/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def _request(path):
    from django.test import RequestFactory

    return RequestFactory().get(path)


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_a_wrong_method_on_the_api_docs_and_schema_is_a_json_405_with_allow(alice, path):
    client = Client()
    client.force_login(alice)
    response = client.post(path)
    assert response.status_code == 405 and response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail", "errors"} and "GET" in response["Allow"]


def test_no_route_takes_an_id_with_djangos_unbounded_int_converter():
    """Every id in a path goes through the one bounded converter (``<id:…>``): a new route
    written with ``<int:…>`` would let a number past the database's range reach a query."""
    from django.urls import URLPattern, URLResolver, get_resolver
    from django.urls.converters import IntConverter

    def walk(patterns, prefix=""):
        for entry in patterns:
            converters = getattr(entry.pattern, "converters", {})
            for name, converter in converters.items():
                yield f"{prefix}{entry.pattern}", name, converter
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, f"{prefix}{entry.pattern}")
            else:
                assert isinstance(entry, URLPattern)

    unbounded = [(route, name) for route, name, converter in walk(get_resolver().url_patterns)
                 if type(converter) is IntConverter]
    assert unbounded == []
