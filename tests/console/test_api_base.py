"""API foundations: authentication, error bodies, OpenAPI schema and offline docs."""

import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from console.api.errors import exception_handler

pytestmark = pytest.mark.django_db


def test_anonymous_api_call_is_refused_with_the_standard_error_body(db):
    response = APIClient().get("/api/v1/me/")
    assert response.status_code in (401, 403)
    assert set(response.json()) == {"detail", "errors"}
    assert response.json()["errors"] == {}


def test_me_returns_the_signed_in_principal(alice):
    client = APIClient()
    client.force_authenticate(alice)
    body = client.get("/api/v1/me/").json()
    assert body["username"] == "alice"
    assert body["is_service_account"] is False
    assert "password" not in body


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/v1/endpoints/abc/", "/api/v2/"])
def test_unknown_api_route_is_a_json_404(db, path):
    response = APIClient().get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith(f"No API route matches {path}")


def test_validation_errors_carry_field_messages():
    response = exception_handler(ValidationError({"name": ["Enter a valid DNS-1035 label."]}), {})
    assert response.status_code == 400
    assert response.data == {
        "detail": "name: Enter a valid DNS-1035 label.",
        "errors": {"name": ["Enter a valid DNS-1035 label."]},
    }


def test_django_validation_errors_from_services_become_400s_with_fields():
    from django.core.exceptions import ValidationError as DjangoValidationError

    response = exception_handler(DjangoValidationError({"max_replicas": ["Must be at least 1."]}), {})
    assert response.status_code == 400
    assert response.data["errors"] == {"max_replicas": ["Must be at least 1."]}


def test_openapi_schema_is_valid_openapi_3(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert text.startswith("openapi: 3.")
    assert "/api/v1/me/" in text


def test_schema_endpoint_serves_openapi(alice, client):
    client.force_login(alice)
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


@pytest.mark.parametrize("url_name", ["api-docs", "api-redoc"])
def test_api_docs_load_every_asset_from_this_server(alice, client, url_name):
    client.force_login(alice)
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    html = response.content.decode()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references, "the docs page references its assets"
    for ref in references:
        assert not re.match(r"^(https?:)?//", ref), f"external asset {ref}"
    for ref in references:
        if ref.startswith("/static/"):
            asset = client.get(ref)
            assert asset.status_code == 200, ref
