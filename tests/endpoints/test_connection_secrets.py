"""A storage connection's secret values never leave the console except towards the cluster: not
in a page, an API answer, a plan, a revision diff, an audit event, an export or a log line — read
from the side of the project's Viewer, an outsider and an auditor."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints import storage_check
from endpoints.models import Endpoint
from endpoints.services import connections as services
from endpoints.services.registry import model_version_create
from tests.endpoints.endpoint_factories import deploy_setup, grant
from tests.endpoints.test_endpoint_views import _confirm, _url, _wizard_data

pytestmark = pytest.mark.django_db
ACCESS_KEY = "AKIASECRETLEAKCHECK01"
SECRET = "SECRET-never-shown-9b8a7c6d5e4f"
NEW_SECRET = "SECRET-rotated-1a2b3c4d5e6f"


@pytest.fixture
def world(alice, bob, fake_apiserver, monkeypatch):
    monkeypatch.setattr(storage_check, "check_storage", lambda kind, config, secrets, uri, timeout=5.0:
                        storage_check.StorageCheck(state="ok", message=f"1 object under {uri} (checked)"))
    setup = deploy_setup(actor=alice, api_url=fake_apiserver.url)
    grant(alice, setup.project, "view", "deploy", "manage")
    grant(bob, setup.project, "view")
    connection = services.connection_create(
        actor=alice, project=setup.project, name="private", kind="s3",
        config={"endpoint_url": "http://127.0.0.1:9000", "region": "us-east-1"},
        secrets={"access_key_id": ACCESS_KEY, "secret_access_key": SECRET})
    version = model_version_create(actor=alice, model=setup.model, storage_uri="s3://private/scorer/3",
                                   model_format="sklearn", connection=connection)
    return setup, connection, version


def _assert_clean(text: str, where: str) -> None:
    for value in (SECRET, ACCESS_KEY, NEW_SECRET):
        assert value not in text, f"{where} shows a secret value"


def test_no_secret_value_in_any_page_api_answer_plan_diff_audit_export_or_log(
        client, alice, bob, outsider, auditor, world, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    setup, connection, version = world
    client.force_login(alice)
    plan_url = client.post(_url("endpoint-create"), _wizard_data(setup, model_version=version.pk))["Location"]
    plan_page = client.get(plan_url).content.decode()
    _assert_clean(plan_page, "the plan")
    assert "connection private" in plan_page and "ic-private" in plan_page
    _confirm(client, plan_url, django_capture_on_commit_callbacks)
    endpoint = Endpoint.objects.get(name="card-scorer")
    # The cluster gets the values (only there).
    assert setup.live_isvc("card-scorer")["spec"]["predictor"]["serviceAccountName"] == "ic-private"
    with django_capture_on_commit_callbacks(execute=True):
        services.connection_update(actor=alice, connection=connection, secrets={"secret_access_key": NEW_SECRET})
    edit_plan = client.post(_url("endpoint-edit", endpoint), _wizard_data(setup, model_version=version.pk,
                                                                          max_replicas=3))["Location"]
    _assert_clean(client.get(edit_plan).content.decode(), "the edit plan")

    pages = [_url(tab, endpoint) for tab in ("endpoint-detail", "endpoint-configuration", "endpoint-manifest",
                                             "endpoint-revisions", "endpoint-status")]
    pages.append(reverse("endpoints:model-detail", kwargs={"pk": setup.model.pk}))
    apis = [f"/api/v1/endpoints/{endpoint.pk}/", f"/api/v1/endpoints/{endpoint.pk}/revisions/",
            f"/api/v1/models/{setup.model.pk}/versions/", f"/api/v1/models/{setup.model.pk}/"]
    for user in (alice, bob, outsider):
        client.force_login(user)
        api = APIClient()
        api.force_authenticate(user)
        for url in pages:
            _assert_clean(client.get(url).content.decode(), f"{url} as {user.username}")
        for url in apis:
            _assert_clean(api.get(url).content.decode(), f"{url} as {user.username}")
    client.force_login(auditor)
    for fmt in ("csv", "jsonl"):
        response = client.get(reverse("audit:event-export", kwargs={"fmt": fmt}))
        assert response.status_code == 200, fmt
        body = b"".join(response.streaming_content) if response.streaming else response.content
        _assert_clean(body.decode(), f"the {fmt} export")
    _assert_clean(client.get(reverse("audit:event-list")).content.decode(), "the audit trail")
    for event in AuditEvent.objects.all():
        _assert_clean(str(event.details) + event.target_repr, f"audit event {event.action}")
    assert {"connection.create", "connection.rotate", "endpoint.apply"} <= set(
        AuditEvent.objects.values_list("action", flat=True))
    _assert_clean(caplog.text, "the log")
