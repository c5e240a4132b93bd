"""The cluster's ingress gateway address (KServe's INGRESS_HOST:INGRESS_PORT): what a platform
admin may enter, how it is refused (a form error, a 400 naming the field, nothing saved), its
audit, and "How to call it" built from it (the gateway's URL with the endpoint's Host)."""

from __future__ import annotations

import shlex

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints import gateway
from endpoints.calling import how_to_call
from endpoints.models import Cluster
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("address", "url"), [
    ("127.0.0.1:8081", "http://127.0.0.1:8081"),
    ("203.0.113.10", "http://203.0.113.10"),
    ("Gateway.Example.com:80", "http://gateway.example.com"),
    ("https://gateway.example.com", "https://gateway.example.com"),
    ("https://gateway.example.com:8443/", "https://gateway.example.com:8443"),
    ("[::1]:8081", "http://[::1]:8081"),
])
def test_accepted_addresses_and_the_url_built_from_them(address, url):
    gateway.validate_gateway_address(address)
    assert gateway.base_url(address) == url


@pytest.mark.parametrize(("address", "message"), [
    ("127.0.0.1:99999", "port"),
    ("127.0.0.1:0", "port"),
    ("gateway.example.com:http", "port"),
    ("ftp://gateway.example.com", "http://"),
    ("http://user:secret@gateway.example.com", "password"),
    ("gateway.example.com/v1/models", "Only a host and a port"),
    ("gateway.example.com?x=1", "Only a host and a port"),
    ("gate way.example.com", "spaces"),
    ("-bad-.example.com", "valid host name"),
])
def test_refused_addresses_say_why(address, message):
    with pytest.raises(Exception) as caught:  # noqa: PT011 - Django's ValidationError, message checked
        gateway.validate_gateway_address(address)
    assert message in str(caught.value)


def _edit_form(cluster, **changes) -> dict:
    data = {"description": "", "kind": cluster.kind, "connection": cluster.connection, "kubeconfig_path": "",
            "kubeconfig_context": "", "api_url": cluster.api_url, "api_token": "",
            "ingress_domain": cluster.ingress_domain, "gateway_address": ""}
    data.update(changes)
    return data


@pytest.fixture
def cluster():
    project, _ = project_with_model("fraud")
    return project.cluster


def test_admin_sets_the_gateway_address_and_it_is_audited(admin_client, admin_user, cluster):
    response = admin_client.post(reverse("endpoints:cluster-edit", kwargs={"pk": cluster.pk}),
                                 _edit_form(cluster, gateway_address="127.0.0.1:8081"))
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.gateway_address == "127.0.0.1:8081"
    event = AuditEvent.objects.filter(action="cluster.update", target_id=str(cluster.pk)).latest("id")
    assert event.actor_name == admin_user.username
    assert "gateway_address" in str(event.details) and "127.0.0.1:8081" in str(event.details)
    page = admin_client.get(reverse("endpoints:cluster-detail", kwargs={"pk": cluster.pk}))
    assert "http://127.0.0.1:8081" in page.text


def test_a_bad_address_is_a_form_error_and_nothing_changes(admin_client, cluster):
    events = AuditEvent.objects.count()
    response = admin_client.post(reverse("endpoints:cluster-edit", kwargs={"pk": cluster.pk}),
                                 _edit_form(cluster, gateway_address="http://gw.example.com/path"))
    assert response.status_code == 200
    assert "Only a host and a port" in response.context["form"].errors["gateway_address"][0]
    cluster.refresh_from_db()
    assert cluster.gateway_address == "" and AuditEvent.objects.count() == events


def test_the_api_refuses_a_bad_address_with_the_fields_message(admin_user, cluster):
    api = APIClient()
    api.force_login(admin_user)
    response = api.patch(f"/api/v1/clusters/{cluster.pk}/", {"gateway_address": "gw.example.com:70000"}, format="json")
    assert response.status_code == 400
    assert "port" in response.json()["errors"]["gateway_address"][0]
    # Saved disabled: an enabled cluster is read first, and the factory's API server does not exist.
    response = api.patch(f"/api/v1/clusters/{cluster.pk}/", {"gateway_address": "gw.example.com:8080", "enabled": False},
                         format="json")
    assert response.status_code == 200 and response.json()["gateway_address"] == "gw.example.com:8080"
    assert Cluster.objects.get(pk=cluster.pk).gateway_address == "gw.example.com:8080"


def _curl_words(curl: str) -> list[str]:
    return shlex.split(curl.replace("\\\n", " "))


def test_how_to_call_goes_through_the_gateway_with_the_endpoints_host(cluster):
    endpoint = endpoint_in(cluster.projects.get(), "scorer")
    cluster.gateway_address = "127.0.0.1:8081"
    cluster.save()
    endpoint.refresh_from_db()
    calling = how_to_call(endpoint, None)
    words = _curl_words(calling["curl"])
    assert "http://127.0.0.1:8081/v1/models/scorer:predict" in words
    assert words[words.index("Host: scorer.fraud.example.com") - 1] == "-H"
    assert "Authorization: Bearer $TOKEN" in words
    assert calling["gateway_url"] == "http://127.0.0.1:8081" and calling["host"] == "scorer.fraud.example.com"


def test_without_a_gateway_how_to_call_uses_the_url_as_it_is(cluster):
    endpoint = endpoint_in(cluster.projects.get(), "scorer")
    words = _curl_words(how_to_call(endpoint, None)["curl"])
    assert "http://scorer.fraud.example.com/v1/models/scorer:predict" in words
    assert not any(w.startswith("Host:") for w in words)
