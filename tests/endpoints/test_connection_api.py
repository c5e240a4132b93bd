"""``/api/v1/connections/``: list, create, retrieve, PATCH, DELETE, rotate, check, opt-in/out,
usage — who may do what (the attacker's side too), the API's error shape, and write-only
secrets: no answer, audit event or log line carries a secret value."""

from __future__ import annotations

import json
import logging

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints import storage_check
from endpoints.models import ConnectionOptIn, StorageConnection
from endpoints.services.connections import secret_values
from tests.endpoints.connection_factories import (
    ACCESS_KEY,
    GCS_KEY,
    HF_TOKEN,
    NEW_HF_TOKEN,
    NEW_SECRET_KEY,
    SECRET_KEY,
    TYPED_SECRET,
    assert_no_secret,
    build,
    deployed,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/connections/"


@pytest.fixture
def w():
    return build()


def api(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def detail(connection, action: str = "") -> str:
    return f"{BASE}{connection.pk}/" + (f"{action}/" if action else "")


def body(response) -> str:
    return response.content.decode()


# --- reading -----------------------------------------------------------------------------------

def test_anonymous_gets_401(w):
    assert api(None).get(BASE).status_code == 401


def test_list_shows_own_projects_and_platform_wide_without_secrets(w):
    response = api(w.owner).get(BASE)
    assert response.status_code == 200
    names = [row["name"] for row in response.json()["results"]]
    assert sorted(names) == ["fraud-store", "shared-hf"]
    row = next(r for r in response.json()["results"] if r["name"] == "fraud-store")
    assert row["secret_fields"] == ["access_key_id", "secret_access_key"]
    assert row["secret_version"] == 1 and row["secret_rotated_at"] is None
    assert row["scope"] == "project" and row["project_name"] == "fraud"
    assert row["config"]["endpoint_url"] == "https://minio.fraud.example.com"
    assert "secrets" not in row and "secret_ciphertext" not in row
    assert_no_secret(body(response))


def test_list_filters(w):
    client = api(w.admin)
    assert [r["name"] for r in client.get(BASE, {"scope": "platform"}).json()["results"]] == ["shared-hf"]
    assert sorted(r["name"] for r in client.get(BASE, {"kind": "s3"}).json()["results"]) == [
        "fraud-store", "hidden-store"]
    assert [r["name"] for r in client.get(BASE, {"project": "secret-team"}).json()["results"]] == ["hidden-store"]
    # Another tenant's project filters to nothing for the owner of fraud, as an unknown one.
    assert api(w.owner).get(BASE, {"project": "secret-team"}).json()["results"] == []


def test_outsider_gets_404_for_another_projects_connection(w):
    client = api(w.outsider)
    assert client.get(detail(w.connection)).status_code == 404
    assert client.patch(detail(w.connection), {"description": "x"}, format="json").status_code == 404
    assert client.delete(detail(w.connection)).status_code == 404
    assert client.get(detail(w.connection, "rotate")).status_code == 404
    assert client.post(detail(w.connection, "rotate"), {"secrets": {"secret_access_key": TYPED_SECRET}},
                       format="json").status_code == 404
    assert client.post(detail(w.connection, "check"), {"uri": "s3://models/x"}, format="json").status_code == 404
    assert client.get(detail(w.connection, "usage")).status_code == 404
    # The owner of one project is an outsider to the other.
    assert api(w.owner).get(detail(w.other_connection)).status_code == 404
    assert StorageConnection.objects.get(pk=w.connection.pk).secret_version == 1


def test_viewer_reads_but_gets_403_on_changes(w):
    client = api(w.viewer)
    assert client.get(detail(w.connection)).status_code == 200
    assert client.get(detail(w.connection, "usage")).status_code == 200
    assert client.patch(detail(w.connection), {"description": "x"}, format="json").status_code == 403
    assert client.delete(detail(w.connection)).status_code == 403
    assert client.get(detail(w.connection, "rotate")).status_code == 403
    response = client.post(detail(w.connection, "rotate"), {"secrets": {"secret_access_key": TYPED_SECRET}},
                           format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You may not do this on this object.", "errors": {}}
    assert client.post(detail(w.connection, "check"), {"uri": "s3://models/x"}, format="json").status_code == 403
    assert StorageConnection.objects.get(pk=w.connection.pk).description == "MinIO of the fraud team"


def test_deployer_cannot_create_and_outsider_cannot_name_the_project(w):
    data = {"project": w.project.pk, "name": "sneaky", "kind": "hf", "secrets": {"token": TYPED_SECRET}}
    response = api(w.deployer).post(BASE, data, format="json")
    assert response.status_code == 403
    response = api(w.outsider).post(BASE, data, format="json")
    assert response.status_code == 400 and "project" in response.json()["errors"]
    response = api(w.owner).post(BASE, {**data, "project": None}, format="json")
    assert response.status_code == 403  # platform-wide: admins only
    assert not StorageConnection.objects.filter(name="sneaky").exists()


# --- create ------------------------------------------------------------------------------------

def test_owner_creates_and_the_answer_has_no_secret(w):
    response = api(w.owner).post(BASE, {
        "project": w.project.pk, "name": "gcs-models", "kind": "gcs", "config": {"project": "fraud-prod"},
        "secrets": {"service_account_json": GCS_KEY}, "description": "GCS bucket"}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["secret_fields"] == ["service_account_json"] and data["secret_version"] == 1
    assert data["created_by"] == "fraud-owner" and data["config"] == {"project": "fraud-prod"}
    assert "secrets" not in data
    assert_no_secret(body(response))
    connection = StorageConnection.objects.get(pk=data["id"])
    assert json.loads(secret_values(connection)["service_account_json"])["private_key"].startswith("SECRET-abc123")


def test_admin_creates_platform_wide(w):
    response = api(w.admin).post(BASE, {"project": None, "name": "org-hf", "kind": "hf",
                                        "secrets": {"token": HF_TOKEN}}, format="json")
    assert response.status_code == 201
    assert response.json()["scope"] == "platform" and response.json()["project"] is None
    assert_no_secret(body(response))


@pytest.mark.parametrize(("payload", "field"), [
    ({"kind": "s3", "config": {"endpoint_url": "ftp://minio"},
      "secrets": {"access_key_id": TYPED_SECRET, "secret_access_key": TYPED_SECRET}}, "endpoint_url"),
    ({"kind": "s3", "config": {}, "secrets": {"access_key_id": TYPED_SECRET}}, "secret_access_key"),
    ({"kind": "gcs", "secrets": {"service_account_json": '{"private_key": "' + TYPED_SECRET + '"'}},
     "service_account_json"),
    ({"kind": "https", "config": {"host": "models.example.com"},
      "secrets": {"headers": '{"Authorization": ["Bearer ' + TYPED_SECRET + '"]}'}}, "headers"),
    ({"kind": "hf", "secrets": {"token": TYPED_SECRET, "password": TYPED_SECRET}}, "secrets"),
    ({"kind": "hf", "secrets": TYPED_SECRET}, "secrets"),
    ({"kind": "hf", "secrets": {"token": {"nested": TYPED_SECRET}}}, "secrets"),
    ({"kind": "nope", "secrets": {"token": TYPED_SECRET}}, "kind"),
])
def test_bad_create_is_400_with_field_errors_and_no_secret(w, payload, field):
    response = api(w.owner).post(BASE, {"project": w.project.pk, "name": "bad", **payload}, format="json")
    assert response.status_code == 400
    data = response.json()
    assert set(data) == {"detail", "errors"} and field in data["errors"], data
    assert_no_secret(body(response))
    assert not StorageConnection.objects.filter(name="bad").exists()


def test_duplicate_name_is_400(w):
    response = api(w.owner).post(BASE, {"project": w.project.pk, "name": "fraud-store", "kind": "hf",
                                        "secrets": {"token": TYPED_SECRET}}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("name: Project fraud already has a connection named fraud-store")


# --- change ------------------------------------------------------------------------------------

def test_patch_merges_settings_and_keeps_secrets(w):
    response = api(w.owner).patch(detail(w.connection), {"config": {"region": "us-east-2"}, "display_name": "X"},
                                  format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["config"]["region"] == "us-east-2"
    assert response.json()["config"]["endpoint_url"] == "https://minio.fraud.example.com"
    assert response.json()["secret_version"] == 1
    connection = StorageConnection.objects.get(pk=w.connection.pk)
    assert secret_values(connection) == {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}


def test_patch_with_a_secret_rotates_and_blank_keeps(w):
    client = api(w.owner)
    response = client.patch(detail(w.connection), {"secrets": {"access_key_id": "", "secret_access_key": NEW_SECRET_KEY}},
                            format="json")
    assert response.status_code == 200 and response.json()["secret_version"] == 2
    assert response.json()["secret_rotated_at"] is not None
    assert_no_secret(body(response))
    assert secret_values(StorageConnection.objects.get(pk=w.connection.pk)) == {
        "access_key_id": ACCESS_KEY, "secret_access_key": NEW_SECRET_KEY}


def test_patch_cannot_rename_move_or_change_kind(w):
    client = api(w.owner)
    assert "name" in client.patch(detail(w.connection), {"name": "renamed"}, format="json").json()["errors"]
    assert "kind" in client.patch(detail(w.connection), {"kind": "hf"}, format="json").json()["errors"]
    assert "project" in client.patch(detail(w.connection), {"project": None}, format="json").json()["errors"]
    response = client.patch(detail(w.connection), {"config": {"endpoint_url": "bad"},
                                                   "secrets": {"secret_access_key": TYPED_SECRET}}, format="json")
    assert response.status_code == 400 and "endpoint_url" in response.json()["errors"]
    assert_no_secret(body(response))
    assert StorageConnection.objects.get(pk=w.connection.pk).secret_version == 1


def test_put_is_not_offered(w):
    assert api(w.owner).put(detail(w.connection), {}, format="json").status_code == 405


def test_platform_wide_is_changed_by_admins_only(w):
    assert api(w.owner).patch(detail(w.shared), {"description": "x"}, format="json").status_code == 403
    assert api(w.owner).delete(detail(w.shared)).status_code == 403
    assert api(w.admin).patch(detail(w.shared), {"description": "x"}, format="json").status_code == 200


# --- rotate ------------------------------------------------------------------------------------

def test_rotate_plan_then_rotate(w):
    from endpoints.services.connections import connection_opt_in

    connection_opt_in(actor=w.owner, connection=w.shared, project=w.project)
    deployed(w.project, w.shared, name="llm")
    deployed(w.project, w.connection, name="scorer")
    plan = api(w.admin).get(detail(w.shared, "rotate")).json()
    assert plan == {"secret_version": 1, "namespaces": ["fraud"], "restart": ["fraud/llm"], "keep": []}
    plan = api(w.owner).get(detail(w.connection, "rotate")).json()
    assert plan == {"secret_version": 1, "namespaces": ["fraud"], "restart": [], "keep": ["fraud/scorer"]}
    response = api(w.owner).post(detail(w.connection, "rotate"), {"secrets": {"secret_access_key": NEW_SECRET_KEY}},
                                 format="json")
    assert response.status_code == 200 and response.json()["secret_version"] == 2
    assert_no_secret(body(response))


def test_rotate_needs_a_new_value(w):
    client = api(w.owner)
    for payload in ({"secrets": {}}, {"secrets": {"secret_access_key": "  "}}, {}):
        response = client.post(detail(w.connection, "rotate"), payload, format="json")
        assert response.status_code == 400 and "secrets" in response.json()["errors"]
    response = client.post(detail(w.connection, "rotate"), {"secrets": {"secret_access_key": SECRET_KEY}},
                           format="json")
    assert response.status_code == 400 and "nothing was rotated" in response.json()["detail"]
    response = client.post(detail(w.connection, "rotate"), {"secrets": {"token": TYPED_SECRET}}, format="json")
    assert response.status_code == 400 and "Unknown secret field" in response.json()["detail"]
    assert_no_secret(body(response))
    assert StorageConnection.objects.get(pk=w.connection.pk).secret_version == 1


# --- delete ------------------------------------------------------------------------------------

def test_delete_unused_and_refuse_used(w):
    deployed(w.project, w.connection)
    response = api(w.owner).delete(detail(w.connection))
    assert response.status_code == 400
    assert "is used by 1 endpoint: fraud/scorer" in response.json()["errors"]["non_field_errors"][0]
    fresh = StorageConnection.objects.create(project=w.project, name="unused", kind="hf")
    assert api(w.owner).delete(detail(fresh)).status_code == 204
    assert not StorageConnection.objects.filter(pk=fresh.pk).exists()


# --- check -------------------------------------------------------------------------------------

def test_check_answers_state_message_detail_and_redacts(w, monkeypatch):
    monkeypatch.setattr(storage_check, "check_storage", lambda kind, config, secrets, uri, *, timeout: (
        storage_check.StorageCheck("denied", f"AccessDenied for {secrets['access_key_id']}",
                                   {"status": 403, "sent": secrets["secret_access_key"]})))
    response = api(w.deployer).post(detail(w.connection, "check"), {"uri": " s3://models/x "}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"state", "message", "detail", "uri", "connection"}
    assert data["state"] == "denied" and data["uri"] == "s3://models/x" and data["connection"] == "fraud-store"
    assert data["detail"]["status"] == 403 and data["message"].startswith("AccessDenied for ")
    assert_no_secret(body(response))


def test_check_invalid_uri_and_missing_uri(w, monkeypatch):
    monkeypatch.setattr(storage_check, "check_storage", lambda *a, **k: pytest.fail("storage was called"))
    response = api(w.owner).post(detail(w.connection, "check"), {"uri": "hf://org/model"}, format="json")
    assert response.json()["state"] == "invalid"
    response = api(w.owner).post(detail(w.connection, "check"), {}, format="json")
    assert response.status_code == 400 and "uri" in response.json()["errors"]


def test_platform_connection_check_needs_an_opted_in_project(w, monkeypatch):
    monkeypatch.setattr(storage_check, "check_storage", lambda kind, config, secrets, uri, *, timeout: (
        storage_check.StorageCheck("ok", "Readable.")))
    assert api(w.deployer).post(detail(w.shared, "check"), {"uri": "hf://org/m"}, format="json").status_code == 403
    from endpoints.services.connections import connection_opt_in

    connection_opt_in(actor=w.owner, connection=w.shared, project=w.project)
    response = api(w.deployer).post(detail(w.shared, "check"), {"uri": "hf://org/m"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "ok"


# --- opt in / out, usage -----------------------------------------------------------------------

def test_owner_opts_in_and_out_and_usage_shows_only_visible_projects(w):
    client = api(w.owner)
    response = client.post(detail(w.shared, "opt-in"), {"project": w.project.pk}, format="json")
    assert response.status_code == 200
    # secret-team opted in too, but the owner of fraud cannot see it.
    assert [row["project_name"] for row in response.json()["opt_ins"]] == ["fraud"]
    assert [row["project_name"] for row in api(w.admin).get(detail(w.shared, "usage")).json()["opt_ins"]] == [
        "fraud", "secret-team"]
    response = client.post(detail(w.shared, "opt-out"), {"project": w.project.pk}, format="json")
    assert response.status_code == 200 and response.json()["opt_ins"] == []
    assert not ConnectionOptIn.objects.filter(project=w.project).exists()


def test_opt_in_refusals(w):
    # Another tenant's project does not exist for the owner of fraud.
    response = api(w.owner).post(detail(w.shared, "opt-out"), {"project": w.other_project.pk}, format="json")
    assert response.status_code == 400 and "project" in response.json()["errors"]
    assert api(w.deployer).post(detail(w.shared, "opt-in"), {"project": w.project.pk},
                                format="json").status_code == 403
    response = api(w.owner).post(detail(w.connection, "opt-in"), {"project": w.project.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"non_field_errors": ["Only platform-wide connections are opted into."]}
    assert ConnectionOptIn.objects.filter(project=w.other_project).exists()


def test_usage_lists_endpoints_and_versions(w):
    version, endpoint = deployed(w.project, w.connection)
    data = api(w.viewer).get(detail(w.connection, "usage")).json()
    assert data["endpoints"] == [{"id": endpoint.pk, "project": "fraud", "name": "scorer"}]
    assert data["versions"][0]["id"] == version.pk and data["versions"][0]["model_name"] == "scorer-model"
    # Another tenant's endpoints on a platform connection stay hidden.
    deployed(w.other_project, w.shared, name="theirs")
    assert api(w.owner).get(detail(w.shared, "usage")).json()["endpoints"] == []


# --- no secret anywhere ----------------------------------------------------------------------------

def test_no_secret_in_any_answer_audit_event_or_log(w, monkeypatch, caplog):
    monkeypatch.setattr(storage_check, "check_storage", lambda kind, config, secrets, uri, *, timeout: (
        storage_check.StorageCheck("ok", "Readable.", {"size": 1})))
    bodies = []
    with caplog.at_level(logging.DEBUG):
        client = api(w.owner)
        created = client.post(BASE, {"project": w.project.pk, "name": "life", "kind": "s3", "config": {},
                                     "secrets": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}},
                              format="json")
        bodies.append(created.content)
        life = created.json()["id"]
        hf = client.post(BASE, {"project": w.project.pk, "name": "life-hf", "kind": "hf",
                                "secrets": {"token": HF_TOKEN}}, format="json")
        bodies.append(hf.content)
        for method, path, payload in [
            ("post", BASE, {"project": w.project.pk, "name": "life", "kind": "hf", "secrets": {"token": TYPED_SECRET}}),
            ("patch", f"{BASE}{life}/", {"description": "x", "secrets": {"secret_access_key": NEW_SECRET_KEY}}),
            ("post", f"{BASE}{hf.json()['id']}/rotate/", {"secrets": {"token": NEW_HF_TOKEN}}),
            ("post", f"{BASE}{life}/rotate/", {"secrets": {"access_key_id": TYPED_SECRET}}),
            ("post", f"{BASE}{life}/check/", {"uri": "s3://models/life"}),
            ("patch", f"{BASE}{life}/", {"config": {"addressing": "sideways"}, "secrets": {"access_key_id": "x" + TYPED_SECRET}}),
            ("get", BASE, None), ("get", f"{BASE}{life}/", None), ("get", f"{BASE}{life}/rotate/", None),
            ("get", f"{BASE}{life}/usage/", None),
            ("delete", f"{BASE}{hf.json()['id']}/", None),
        ]:
            response = getattr(client, method)(path, payload, format="json") if payload is not None \
                else getattr(client, method)(path)
            assert response.status_code < 500, (path, response.status_code)
            bodies.append(response.content)
        audit_api = api(w.auditor).get("/api/v1/audit/events/", {"action": "connection.rotate"})
        assert audit_api.status_code == 200 and len(audit_api.json()["results"]) >= 2
        bodies.append(audit_api.content)
    for content in bodies:
        assert_no_secret(content)
    events = AuditEvent.objects.filter(action__startswith="connection.")
    assert {"connection.create", "connection.update", "connection.rotate", "connection.delete"} <= set(
        events.values_list("action", flat=True))
    for event in events:
        assert_no_secret(json.dumps(event.details) + event.target_repr, f"audit event {event.action}")
    assert_no_secret(caplog.text, "log output")


def test_project_must_be_given_explicitly(w):
    response = api(w.owner).post(BASE, {"name": "nowhere", "kind": "hf", "secrets": {"token": TYPED_SECRET}},
                                 format="json")
    assert response.status_code == 400 and "project" in response.json()["errors"]
    assert_no_secret(body(response))
