"""Storage-connection pages: list, create per kind, detail, edit, rotate, delete, storage check,
opt in/out — who may do what (from the attacker's side too), and that no secret value ever
comes back: not in a page, a re-rendered form, an audit event, the audit export or a log line."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from endpoints import storage_check
from endpoints.models import ConnectionOptIn, StorageConnection
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


@pytest.fixture
def w():
    return build()


def url(name: str, connection=None, **query) -> str:
    path = reverse(f"endpoints:{name}", kwargs={"pk": connection.pk} if connection is not None else None)
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return path


def s3_form(**overrides) -> dict:
    data = {"display_name": "", "description": "", "config_endpoint_url": "https://minio.fraud.example.com",
            "config_region": "eu-west-1", "config_verify_tls": "on", "config_ca_bundle": "",
            "config_addressing": "path", "secret_access_key_id": "", "secret_secret_access_key": ""}
    data.update(overrides)
    return data


def page_as(client, user, path, method="get", data=None):
    client.force_login(user)
    return getattr(client, method)(path, data or {})


# --- list --------------------------------------------------------------------------------------

def test_anonymous_is_sent_to_sign_in(client, w):
    response = client.get(url("connection-list"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_list_groups_by_project_then_platform_wide_with_only_visible_opt_ins(client, w):
    response = page_as(client, w.owner, url("connection-list"))
    assert response.status_code == 200
    groups = response.context["groups"]
    assert [(g["project"].name, [c.name for c in g["connections"]]) for g in groups] == [("fraud", ["fraud-store"])]
    assert [c.name for c in response.context["platform"]] == ["shared-hf"]
    # secret-team opted into shared-hf, but the owner of fraud cannot see that project.
    assert response.context["platform"][0].visible_opt_ins == []
    assert "hidden-store" not in response.text and "secret-team" not in response.text
    assert "none of your projects" in response.text
    assert response.context["create_url"] == url("connection-create")
    assert_no_secret(response.content)


def test_admin_sees_every_connection_and_every_opt_in(client, w):
    response = page_as(client, w.admin, url("connection-list"))
    assert [g["project"].name for g in response.context["groups"]] == ["fraud", "secret-team"]
    assert [o.project.name for o in response.context["platform"][0].visible_opt_ins] == ["secret-team"]
    assert_no_secret(response.content)


def test_list_filters_by_scope_and_kind(client, w):
    response = page_as(client, w.admin, url("connection-list", scope="platform"))
    assert response.context["groups"] == [] and len(response.context["platform"]) == 1
    response = page_as(client, w.admin, url("connection-list", kind="s3"))
    assert response.context["platform"] == []


def test_navigation_links_to_connections(client, w):
    response = page_as(client, w.viewer, url("connection-list"))
    assert {"label": "Connections", "url": url("connection-list"), "active": True} in response.context["nav_items"]


def test_no_new_connection_button_for_people_who_manage_no_project(client, w):
    response = page_as(client, w.deployer, url("connection-list"))
    assert response.context["create_url"] is None
    assert url("connection-create") not in response.text


# --- who may open what -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["connection-detail", "connection-edit", "connection-rotate", "connection-delete"])
def test_outsider_gets_404_for_another_projects_connection(client, w, name):
    assert page_as(client, w.outsider, url(name, w.connection)).status_code == 404
    assert page_as(client, w.owner, url(name, w.other_connection)).status_code == 404


@pytest.mark.parametrize("name", ["connection-edit", "connection-rotate", "connection-delete"])
def test_outsider_posts_are_404_and_change_nothing(client, w, name):
    data = s3_form(secret_secret_access_key=TYPED_SECRET)
    response = page_as(client, w.outsider, url(name, w.connection), "post", data)
    assert response.status_code == 404
    connection = StorageConnection.objects.get(pk=w.connection.pk)
    assert connection.secret_version == 1
    assert_no_secret(response.content)


def test_outsider_cannot_check_or_opt_in_with_another_projects_ids(client, w):
    assert page_as(client, w.outsider, url("connection-check", w.connection), "post",
                   {"uri": "s3://models/x"}).status_code == 404
    response = page_as(client, w.owner, url("connection-opt-in", w.shared), "post",
                       {"project": w.other_project.pk, "action": "out"})
    assert response.status_code == 404
    assert ConnectionOptIn.objects.filter(project=w.other_project).exists()


def test_viewer_sees_the_page_but_may_not_change_it(client, w):
    response = page_as(client, w.viewer, url("connection-detail", w.connection))
    assert response.status_code == 200
    assert not response.context["can_manage"] and not response.context["can_check"]
    assert url("connection-edit", w.connection) not in response.text
    assert url("connection-check", w.connection) not in response.text
    for name in ("connection-edit", "connection-rotate", "connection-delete"):
        assert page_as(client, w.viewer, url(name, w.connection)).status_code == 403
        response = page_as(client, w.viewer, url(name, w.connection), "post",
                           s3_form(secret_secret_access_key=TYPED_SECRET))
        assert response.status_code == 403
    assert page_as(client, w.viewer, url("connection-check", w.connection), "post",
                   {"uri": "s3://models/x"}).status_code == 403
    assert StorageConnection.objects.filter(pk=w.connection.pk, secret_version=1).exists()


def test_deployer_cannot_create_a_connection(client, w):
    assert page_as(client, w.deployer, url("connection-create")).status_code == 403
    assert page_as(client, w.deployer, url("connection-create", kind="s3")).status_code == 403
    response = page_as(client, w.deployer, url("connection-create", kind="hf"), "post",
                       {"project": w.project.pk, "name": "sneaky", "secret_token": TYPED_SECRET})
    assert response.status_code == 403
    assert not StorageConnection.objects.filter(name="sneaky").exists()
    assert_no_secret(response.content)


def test_platform_wide_connection_is_visible_to_everyone_but_changed_by_admins_only(client, w):
    response = page_as(client, w.outsider, url("connection-detail", w.shared))
    assert response.status_code == 200
    # Another tenant's opt-in is not shown.
    assert "secret-team" not in response.text
    assert page_as(client, w.owner, url("connection-edit", w.shared)).status_code == 403
    assert page_as(client, w.owner, url("connection-rotate", w.shared), "post",
                   {"secret_token": TYPED_SECRET}).status_code == 403
    assert page_as(client, w.admin, url("connection-edit", w.shared)).status_code == 200


# --- create ------------------------------------------------------------------------------------

def test_create_without_a_kind_lists_the_kinds(client, w):
    response = page_as(client, w.owner, url("connection-create", project="fraud"))
    assert response.status_code == 200
    for kind in ("s3", "gcs", "azure", "hf", "oci", "https"):
        assert f"?kind={kind}&amp;project=fraud" in response.text


def test_create_form_offers_only_manageable_projects_and_platform_for_admins(client, w):
    response = page_as(client, w.owner, url("connection-create", kind="s3", project="fraud"))
    choices = [value for value, _ in response.context["form"].fields["project"].choices]
    assert choices == ["", str(w.project.pk)]
    assert response.context["form"].initial["project"] == str(w.project.pk)
    assert "config_endpoint_url" in response.context["form"].fields
    assert 'type="password"' in response.text
    response = page_as(client, w.admin, url("connection-create", kind="s3"))
    choices = [value for value, _ in response.context["form"].fields["project"].choices]
    assert choices == ["", str(w.project.pk), str(w.other_project.pk), "platform"]


def test_owner_creates_a_connection_and_no_value_comes_back(client, w):
    response = page_as(client, w.owner, url("connection-create", kind="s3"), "post", s3_form(
        project=w.project.pk, name="new-store", display_name="New store",
        secret_access_key_id=ACCESS_KEY, secret_secret_access_key=SECRET_KEY))
    connection = StorageConnection.objects.get(name="new-store")
    assert response.status_code == 302 and response["Location"] == url("connection-detail", connection)
    assert connection.project == w.project and connection.created_by == w.owner
    assert connection.secret_fields == ["access_key_id", "secret_access_key"]
    assert ACCESS_KEY not in connection.secret_ciphertext
    page = client.get(response["Location"])
    assert "Connection new-store created in fraud." in page.text
    assert_no_secret(page.content)


def test_owner_cannot_create_platform_wide_or_in_another_project(client, w):
    for project in ("platform", w.other_project.pk):
        response = page_as(client, w.owner, url("connection-create", kind="hf"), "post",
                           {"project": project, "name": "sneaky", "secret_token": TYPED_SECRET})
        assert response.status_code == 200
        assert "project" in response.context["form"].errors
        assert_no_secret(response.content)
    assert not StorageConnection.objects.filter(name="sneaky").exists()


def test_admin_creates_a_platform_wide_connection(client, w):
    response = page_as(client, w.admin, url("connection-create", kind="hf"), "post",
                       {"project": "platform", "name": "team-hf", "secret_token": HF_TOKEN})
    connection = StorageConnection.objects.get(name="team-hf")
    assert response.status_code == 302 and connection.project is None


@pytest.mark.parametrize(("kind", "data", "field"), [
    # The service refuses the endpoint URL: the form comes back, the typed secrets do not.
    ("s3", s3_form(name="bad", config_endpoint_url="ftp://minio", secret_access_key_id=TYPED_SECRET,
                   secret_secret_access_key=TYPED_SECRET), "config_endpoint_url"),
    # A service-account key that is not a key file (it quotes a secret: never echoed).
    ("gcs", {"name": "bad", "config_project": "p", "secret_service_account_json": '{"private_key": "'
                                                                                  + TYPED_SECRET + '"'},
     "secret_service_account_json"),
    # A form error before the service (bad name): the textarea comes back empty.
    ("gcs", {"name": "Not A Slug!", "config_project": "p", "secret_service_account_json": GCS_KEY}, "name"),
    ("https", {"name": "bad", "config_host": "models.example.com",
               "secret_headers": '{"Authorization": "Bearer ' + TYPED_SECRET + '", "x": 1}'}, "secret_headers"),
])
def test_a_failing_create_form_never_renders_a_typed_secret(client, w, kind, data, field):
    response = page_as(client, w.owner, url("connection-create", kind=kind), "post", {**data, "project": w.project.pk})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert_no_secret(response.content)
    assert not StorageConnection.objects.filter(name__in=["bad", "Not A Slug!"]).exists()


def test_duplicate_name_is_a_form_error(client, w):
    response = page_as(client, w.owner, url("connection-create", kind="hf"), "post",
                       {"project": w.project.pk, "name": "fraud-store", "secret_token": TYPED_SECRET})
    assert "already has a connection named fraud-store" in str(response.context["form"].errors["name"])
    assert_no_secret(response.content)


# --- detail ------------------------------------------------------------------------------------

def test_detail_shows_settings_set_fields_version_usage_and_no_value(client, w):
    version, endpoint = deployed(w.project, w.connection)
    response = page_as(client, w.viewer, url("connection-detail", w.connection))
    assert response.status_code == 200
    text = response.text
    assert "https://minio.fraud.example.com" in text and "eu-west-1" in text
    assert [(r["label"], r["set"]) for r in response.context["secret_rows"]] == [
        ("Access key ID", True), ("Secret access key", True)]
    assert "never rotated" in text and "v1" in text
    assert [e.pk for e in response.context["usage"]["endpoints"]] == [endpoint.pk]
    assert [v.pk for v in response.context["usage"]["versions"]] == [version.pk]
    assert f"fraud/{endpoint.name}" in text
    assert_no_secret(response.content)


def test_detail_of_platform_connection_hides_other_tenants_usage(client, w):
    _version, endpoint = deployed(w.other_project, w.shared, name="their-llm")
    response = page_as(client, w.owner, url("connection-detail", w.shared))
    assert response.context["usage"] == {"endpoints": [], "versions": [], "opt_ins": []}
    assert "their-llm" not in response.text and "secret-team" not in response.text
    # The owner may opt their own project in.
    assert [(r["project"].name, r["opted_in"]) for r in response.context["opt_in_rows"]] == [("fraud", False)]
    admin_page = page_as(client, w.admin, url("connection-detail", w.shared))
    assert [e.pk for e in admin_page.context["usage"]["endpoints"]] == [endpoint.pk]


def test_owner_and_deployer_get_the_check_form(client, w):
    for user in (w.owner, w.deployer):
        response = page_as(client, user, url("connection-detail", w.connection))
        assert response.context["can_check"]
        assert url("connection-check", w.connection) in response.text


# --- edit --------------------------------------------------------------------------------------

def test_edit_form_renders_no_secret_and_says_which_are_set(client, w):
    response = page_as(client, w.owner, url("connection-edit", w.connection))
    assert response.status_code == 200
    form = response.context["form"]
    assert "name" not in form.fields and "project" not in form.fields
    assert form.initial["config_endpoint_url"] == "https://minio.fraud.example.com"
    assert "leave blank to keep the stored value" in form.fields["secret_secret_access_key"].help_text
    assert_no_secret(response.content)


def test_edit_with_blank_secrets_keeps_them(client, w):
    response = page_as(client, w.owner, url("connection-edit", w.connection), "post",
                       s3_form(config_region="us-east-2", description="moved"))
    assert response.status_code == 302
    connection = StorageConnection.objects.get(pk=w.connection.pk)
    assert connection.config["region"] == "us-east-2" and connection.description == "moved"
    assert connection.secret_version == 1
    from endpoints.services.connections import secret_values

    assert secret_values(connection) == {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}


def test_edit_with_a_new_secret_rotates_it(client, w):
    response = page_as(client, w.owner, url("connection-edit", w.connection), "post",
                       s3_form(secret_secret_access_key=NEW_SECRET_KEY))
    assert response.status_code == 302
    assert StorageConnection.objects.get(pk=w.connection.pk).secret_version == 2


def test_edit_error_re_renders_without_the_typed_secret(client, w):
    response = page_as(client, w.owner, url("connection-edit", w.connection), "post",
                       s3_form(config_endpoint_url="not a url", secret_secret_access_key=TYPED_SECRET))
    assert response.status_code == 200
    assert "config_endpoint_url" in response.context["form"].errors
    assert_no_secret(response.content)
    assert StorageConnection.objects.get(pk=w.connection.pk).secret_version == 1


# --- rotate ------------------------------------------------------------------------------------

def test_rotate_page_shows_the_plan_restarts_for_hf_and_keeps_the_others(client, w):
    from endpoints.services.connections import connection_opt_in

    connection_opt_in(actor=w.owner, connection=w.shared, project=w.project)
    _v, llm = deployed(w.project, w.shared, name="llm")
    _v, scorer = deployed(w.project, w.connection, name="scorer")
    response = page_as(client, w.admin, url("connection-rotate", w.shared))
    assert response.status_code == 200
    assert [e.pk for e in response.context["restart"]] == [llm.pk] and response.context["keep"] == []
    assert response.context["namespaces"] == ["fraud"]
    assert "Restarted" in response.text
    response = page_as(client, w.owner, url("connection-rotate", w.connection))
    assert [e.pk for e in response.context["keep"]] == [scorer.pk] and response.context["restart"] == []
    assert "KServe reads storage credentials only when a pod starts" in response.text
    assert_no_secret(response.content)


def test_rotate_stores_the_new_value_and_counts_the_version(client, w):
    response = page_as(client, w.owner, url("connection-rotate", w.connection), "post",
                       {"secret_secret_access_key": NEW_SECRET_KEY})
    assert response.status_code == 302
    connection = StorageConnection.objects.get(pk=w.connection.pk)
    assert connection.secret_version == 2 and connection.secret_rotated_at is not None
    from endpoints.services.connections import secret_values

    assert secret_values(connection)["secret_access_key"] == NEW_SECRET_KEY
    page = client.get(response["Location"])
    assert "rotated to version 2" in page.text
    assert_no_secret(page.content)


def test_rotate_without_a_value_or_with_the_same_value_changes_nothing(client, w):
    response = page_as(client, w.owner, url("connection-rotate", w.connection), "post", {})
    assert response.status_code == 200 and "at least one new secret value" in response.text
    response = page_as(client, w.owner, url("connection-rotate", w.connection), "post",
                       {"secret_secret_access_key": SECRET_KEY})
    assert response.status_code == 200 and "nothing was rotated" in response.text
    assert_no_secret(response.content)
    assert StorageConnection.objects.get(pk=w.connection.pk).secret_version == 1


# --- delete ------------------------------------------------------------------------------------

def test_delete_confirm_lists_usage_and_refuses_a_used_connection(client, w):
    version, _endpoint = deployed(w.project, w.connection)
    response = page_as(client, w.owner, url("connection-delete", w.connection))
    assert response.status_code == 200 and [v.pk for v in response.context["usage"]["versions"]] == [version.pk]
    response = client.post(url("connection-delete", w.connection))
    assert response.status_code == 200
    assert "is used by 1 endpoint" in response.text
    assert StorageConnection.objects.filter(pk=w.connection.pk).exists()
    assert_no_secret(response.content)


def test_delete_an_unused_connection(client, w):
    response = page_as(client, w.owner, url("connection-delete", w.connection), "post")
    assert response.status_code == 302 and response["Location"] == url("connection-list")
    assert not StorageConnection.objects.filter(pk=w.connection.pk).exists()


# --- check -------------------------------------------------------------------------------------

def test_check_renders_the_state_and_message(client, w, monkeypatch):
    seen = {}

    def fake(kind, config, secrets, uri, *, timeout):
        seen.update(kind=kind, uri=uri, secrets=secrets)
        return storage_check.StorageCheck("missing_object", f"No object at {uri}.", {"bucket": "models"})

    monkeypatch.setattr(storage_check, "check_storage", fake)
    response = page_as(client, w.deployer, url("connection-check", w.connection), "post",
                       {"uri": "s3://models/fraud/v9"})
    assert response.status_code == 200
    assert seen["secrets"]["secret_access_key"] == SECRET_KEY  # the credentials were used …
    assert response.context["result"].state == "missing_object"
    assert "Nothing found at this path" in response.text and "No object at s3://models/fraud/v9." in response.text
    assert_no_secret(response.content)  # … and never shown


def test_check_of_a_uri_the_kind_does_not_serve_is_invalid_without_reaching_storage(client, w, monkeypatch):
    monkeypatch.setattr(storage_check, "check_storage", lambda *a, **k: pytest.fail("storage was called"))
    response = page_as(client, w.owner, url("connection-check", w.connection), "post", {"uri": "gs://bucket/x"})
    assert response.context["result"].state == "invalid"


def test_check_answer_quoting_a_credential_is_redacted(client, w, monkeypatch):
    monkeypatch.setattr(storage_check, "check_storage", lambda kind, config, secrets, uri, *, timeout: (
        storage_check.StorageCheck("denied", f"InvalidAccessKeyId: {secrets['access_key_id']} is not known",
                                   {"signature": secrets["secret_access_key"]})))
    response = page_as(client, w.owner, url("connection-check", w.connection), "post", {"uri": "s3://models/x"})
    assert response.context["result"].state == "denied"
    assert "InvalidAccessKeyId" in response.text
    assert_no_secret(response.content)


def test_check_that_crashes_is_an_answer_and_logs_no_value(client, w, monkeypatch, caplog):
    def crash(kind, config, secrets, uri, *, timeout):
        raise RuntimeError(f"connection reset while sending {secrets['secret_access_key']}")

    monkeypatch.setattr(storage_check, "check_storage", crash)
    with caplog.at_level(logging.DEBUG):
        response = page_as(client, w.owner, url("connection-check", w.connection), "post", {"uri": "s3://models/x"})
    assert response.status_code == 200 and response.context["result"].state == "unreachable"
    assert_no_secret(response.content)
    assert_no_secret(caplog.text, "log output")


def test_check_needs_a_uri(client, w):
    response = page_as(client, w.owner, url("connection-check", w.connection), "post", {"uri": ""})
    assert response.status_code == 200 and "uri" in response.context["form"].errors


# --- opt in / out ------------------------------------------------------------------------------

def test_owner_opts_the_project_in_and_out(client, w):
    response = page_as(client, w.owner, url("connection-opt-in", w.shared), "post",
                       {"project": w.project.pk, "action": "in"})
    assert response.status_code == 302 and response["Location"] == url("connection-detail", w.shared)
    assert ConnectionOptIn.objects.filter(connection=w.shared, project=w.project, created_by=w.owner).exists()
    page = client.get(response["Location"])
    assert [o.project.name for o in page.context["usage"]["opt_ins"]] == ["fraud"]
    assert page.context["opt_in_rows"][0]["opted_in"]
    client.post(url("connection-opt-in", w.shared), {"project": w.project.pk, "action": "out"})
    assert not ConnectionOptIn.objects.filter(connection=w.shared, project=w.project).exists()
    assert list(AuditEvent.objects.filter(action__in=["connection.opt_in", "connection.opt_out"], project_name="fraud")
                .values_list("action", flat=True).order_by("id")) == ["connection.opt_in", "connection.opt_out"]


def test_viewer_and_deployer_may_not_opt_in(client, w):
    for user in (w.viewer, w.deployer):
        response = page_as(client, user, url("connection-opt-in", w.shared), "post",
                           {"project": w.project.pk, "action": "in"})
        assert response.status_code == 403
    assert not ConnectionOptIn.objects.filter(project=w.project).exists()


def test_opting_in_to_a_project_connection_is_refused_with_the_reason(client, w):
    response = page_as(client, w.owner, url("connection-opt-in", w.connection), "post",
                       {"project": w.project.pk, "action": "in"})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert "Only platform-wide connections are opted into." in page.text


def test_opt_out_while_endpoints_use_it_is_refused(client, w):
    from endpoints.services.connections import connection_opt_in

    connection_opt_in(actor=w.owner, connection=w.shared, project=w.project)
    deployed(w.project, w.shared, name="llm")
    page_as(client, w.owner, url("connection-opt-in", w.shared), "post", {"project": w.project.pk, "action": "out"})
    assert ConnectionOptIn.objects.filter(connection=w.shared, project=w.project).exists()


# --- no secret anywhere ----------------------------------------------------------------------------

def test_no_secret_in_any_page_audit_event_export_or_log(client, w, monkeypatch, caplog):
    """The whole life of a connection, then every place a value could leak to."""
    monkeypatch.setattr(storage_check, "check_storage", lambda kind, config, secrets, uri, *, timeout: (
        storage_check.StorageCheck("ok", "Readable.", {"size": 10})))
    bodies = []
    with caplog.at_level(logging.DEBUG):
        client.force_login(w.owner)
        for path, data in [
            (url("connection-create", kind="s3"), s3_form(project=w.project.pk, name="life", secret_access_key_id=
                                                           ACCESS_KEY, secret_secret_access_key=SECRET_KEY)),
            (url("connection-create", kind="hf"), {"project": w.project.pk, "name": "life-hf",
                                                   "secret_token": HF_TOKEN}),
            (url("connection-create", kind="gcs"), {"project": w.project.pk, "name": "life-gcs",
                                                    "config_project": "p", "secret_service_account_json": GCS_KEY}),
            (url("connection-create", kind="s3"), s3_form(project=w.project.pk, name="life",  # duplicate: error
                                                           secret_secret_access_key=TYPED_SECRET)),
        ]:
            response = client.post(path, data, follow=True)
            bodies.append(response.content)
        life = StorageConnection.objects.get(name="life")
        life_hf = StorageConnection.objects.get(name="life-hf")
        for path, data in [
            (url("connection-edit", life), s3_form(description="edited", secret_secret_access_key=NEW_SECRET_KEY)),
            (url("connection-rotate", life_hf), {"secret_token": NEW_HF_TOKEN}),
            (url("connection-rotate", life), {"secret_access_key_id": TYPED_SECRET, "secret_secret_access_key": ""}),
            (url("connection-check", life), {"uri": "s3://models/life"}),
            (url("connection-edit", life), s3_form(config_addressing="sideways", secret_secret_access_key=TYPED_SECRET)),
        ]:
            bodies.append(client.post(path, data, follow=True).content)
        for path in (url("connection-list"), url("connection-detail", life), url("connection-edit", life),
                     url("connection-rotate", life), url("connection-delete", life),
                     url("connection-detail", life_hf), url("connection-rotate", life_hf)):
            bodies.append(client.get(path).content)
        bodies.append(client.post(url("connection-delete", life_hf), follow=True).content)
        client.force_login(w.auditor)
        for fmt in ("csv", "jsonl"):
            response = client.get(reverse("audit:event-export", kwargs={"fmt": fmt}))
            assert response.status_code == 200
            export = b"".join(response.streaming_content)
            assert b"connection.rotate" in export and b"connection.create" in export
            assert_no_secret(export, f"audit export ({fmt})")
        bodies.append(client.get(reverse("audit:event-list")).content)
    for body in bodies:
        assert_no_secret(body)
    events = AuditEvent.objects.filter(action__startswith="connection.")
    assert {"connection.create", "connection.update", "connection.rotate", "connection.delete"} <= set(
        events.values_list("action", flat=True))
    for event in events:
        assert_no_secret(repr(event.details) + event.target_repr, f"audit event {event.action}")
    assert_no_secret(caplog.text, "log output")


@pytest.mark.parametrize("name", ["connection-create", "connection-edit", "connection-rotate"])
def test_error_reports_leave_out_posted_values_where_secrets_are_typed(client, w, name):
    path = url(name, None if name == "connection-create" else w.connection)
    if name == "connection-create":
        path += "?kind=s3"
    response = page_as(client, w.owner, path, "post", s3_form(secret_secret_access_key=TYPED_SECRET))
    assert response.wsgi_request.sensitive_post_parameters == "__ALL__"
