"""Model registry pages: list, register a model, model detail with versions, register a version
with a reference upload, set an alias."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from endpoints.models import ModelAlias, ModelVersion, RegisteredModel
from tests.endpoints.registry_factories import (
    CSV_SAMPLE,
    EndpointFactory,
    ModelAliasFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
    grant,
    grant_project,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(alice):
    """A project where alice (a data scientist) may deploy."""
    project = ProjectFactory(name="fraud")
    grant_project(alice, project, "view", "deploy")
    return project


@pytest.fixture
def other_project():
    return ProjectFactory(name="secret-team")


def version_form(**overrides) -> dict:
    data = {"storage_uri": "s3://models/fraud/v1", "model_format": "sklearn", "format_version": "1",
            "prediction_column": "", "input_signature": "", "aliases": "", "source_run_uri": "", "description": ""}
    data.update(overrides)
    return data


# --- models list ------------------------------------------------------------------------------

def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(reverse("endpoints:model-list"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_model_list_shows_only_models_of_visible_projects(client, alice, project, other_project):
    RegisteredModelFactory(project=project, name="scorer")
    RegisteredModelFactory(project=other_project, name="hidden-model")
    client.force_login(alice)
    response = client.get(reverse("endpoints:model-list"))
    assert response.status_code == 200
    assert "scorer" in response.text
    assert "hidden-model" not in response.text


def test_model_list_columns_show_versions_count_latest_and_owner(client, alice, project):
    model = RegisteredModelFactory(project=project, name="scorer", owner=alice)
    for _ in range(3):
        ModelVersionFactory(model=model)
    client.force_login(alice)
    response = client.get(reverse("endpoints:model-list"))
    row = response.context["object_list"][0]
    assert (row.version_count, row.latest_version) == (3, 3)
    assert "v3" in response.text
    assert "alice" in response.text


def test_model_list_filters_by_project_and_search(client, alice, project):
    second = ProjectFactory(name="churn")
    grant_project(alice, second, "view")
    RegisteredModelFactory(project=project, name="fraud-scorer")
    RegisteredModelFactory(project=second, name="churn-model")
    RegisteredModelFactory(project=second, name="churn-other", description="gradient boosted")
    client.force_login(alice)

    names = lambda r: sorted(m.name for m in r.context["object_list"])  # noqa: E731
    assert names(client.get(reverse("endpoints:model-list"), {"project": "churn"})) == ["churn-model", "churn-other"]
    assert names(client.get(reverse("endpoints:model-list"), {"q": "boosted"})) == ["churn-other"]
    assert names(client.get(reverse("endpoints:model-list"), {"project": "fraud", "q": "churn"})) == []


def test_model_list_filter_cannot_name_an_invisible_project(client, alice, project, other_project):
    RegisteredModelFactory(project=other_project, name="hidden-model")
    client.force_login(alice)
    response = client.get(reverse("endpoints:model-list"), {"project": other_project.name})
    assert "hidden-model" not in response.text
    assert other_project.name not in [p.name for p in response.context["filter_form"].fields["project"].queryset]


@pytest.mark.parametrize("count", [3, 30])
def test_model_list_query_count_is_bounded(client, alice, project, django_assert_max_num_queries, count):
    for _ in range(count):
        model = RegisteredModelFactory(project=project, owner=alice)
        ModelVersionFactory(model=model)
    client.force_login(alice)
    with django_assert_max_num_queries(9):
        response = client.get(reverse("endpoints:model-list"))
    assert response.status_code == 200
    assert len(response.context["object_list"]) == min(count, 25)


# --- register a model -------------------------------------------------------------------------

def test_register_model_in_a_deployable_project(client, alice, project):
    client.force_login(alice)
    response = client.post(reverse("endpoints:model-create"),
                           {"project": project.pk, "name": "fraud-scorer", "task": "classification"})
    model = RegisteredModel.objects.get(name="fraud-scorer")
    assert response.status_code == 302
    assert response["Location"] == reverse("endpoints:model-detail", kwargs={"pk": model.pk})
    assert model.project == project
    assert model.owner == alice


def test_register_model_offers_only_projects_the_user_may_deploy_in(client, alice, bob, project):
    view_only = ProjectFactory(name="read-only")
    grant_project(alice, view_only, "view")
    client.force_login(alice)
    response = client.get(reverse("endpoints:model-create"))
    offered = [p.name for p in response.context["form"].fields["project"].queryset]
    assert offered == ["fraud"]
    assert "You may not register models in any project yet" not in response.content.decode()
    # Someone who may deploy nowhere is told why the project list is empty and whom to ask.
    client.force_login(bob)
    html = client.get(reverse("endpoints:model-create")).content.decode()
    assert "You may not register models in any project yet" in html and "Deployer role" in html


@pytest.mark.parametrize("which", ["invisible", "view-only"])
def test_register_model_in_a_project_not_offered_is_refused_and_nothing_stored(client, alice, project, which):
    target = ProjectFactory(name="elsewhere")
    if which == "view-only":
        grant_project(alice, target, "view")
    client.force_login(alice)
    response = client.post(reverse("endpoints:model-create"),
                           {"project": target.pk, "name": "sneaky", "task": "classification"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.context["form"].errors["project"][0]
    assert not RegisteredModel.objects.filter(name="sneaky").exists()


def test_register_model_with_a_bad_name_shows_the_service_error(client, alice, project):
    client.force_login(alice)
    response = client.post(reverse("endpoints:model-create"),
                           {"project": project.pk, "name": "Fraud Scorer", "task": "classification"})
    assert response.status_code == 200
    assert "lowercase letters" in response.context["form"].errors["name"][0]
    assert not RegisteredModel.objects.exists()


def test_register_model_twice_is_a_name_error(client, alice, project):
    RegisteredModelFactory(project=project, name="fraud-scorer")
    client.force_login(alice)
    response = client.post(reverse("endpoints:model-create"),
                           {"project": project.pk, "name": "fraud-scorer", "task": "classification"})
    assert "already has a model named fraud-scorer" in response.context["form"].errors["name"][0]


# --- model detail -----------------------------------------------------------------------------

def test_outsider_gets_404_on_another_projects_model(client, outsider, project):
    model = RegisteredModelFactory(project=project)
    ModelVersionFactory(model=model)
    client.force_login(outsider)
    assert client.get(reverse("endpoints:model-detail", kwargs={"pk": model.pk})).status_code == 404
    assert client.get(reverse("endpoints:version-create", kwargs={"pk": model.pk})).status_code == 404
    assert client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                       version_form()).status_code == 404
    assert client.post(reverse("endpoints:version-alias", kwargs={"pk": model.pk, "version": 1}),
                       {"name": "champion"}).status_code == 404
    assert ModelVersion.objects.filter(model=model).count() == 1
    assert not ModelAlias.objects.exists()


def test_viewer_sees_the_model_but_gets_403_on_register_version_and_alias(client, bob, project):
    grant_project(bob, project, "view")
    model = RegisteredModelFactory(project=project)
    ModelVersionFactory(model=model)
    client.force_login(bob)
    detail = client.get(reverse("endpoints:model-detail", kwargs={"pk": model.pk}))
    assert detail.status_code == 200
    assert reverse("endpoints:version-create", kwargs={"pk": model.pk}) not in detail.text
    assert "Deploy v1" not in detail.text
    assert client.get(reverse("endpoints:version-create", kwargs={"pk": model.pk})).status_code == 403
    assert client.post(reverse("endpoints:version-alias", kwargs={"pk": model.pk, "version": 1}),
                       {"name": "champion"}).status_code == 403


def test_model_detail_shows_versions_aliases_profile_and_deployments(client, alice, project):
    from endpoints import profiles

    model = RegisteredModelFactory(project=project, name="scorer")
    v1 = ModelVersionFactory(model=model, storage_uri="s3://models/scorer/one")
    v2 = ModelVersionFactory(model=model, storage_uri="s3://models/scorer/two", model_format="xgboost",
                             format_version="2", reference_rows=40, reference_filename="sample.csv",
                             reference_profile=profiles.profile_from_file(CSV_SAMPLE, "s.csv",
                                                                          prediction_column="score"))
    ModelAliasFactory(version=v2, name="champion")
    EndpointFactory(model_version=v1, name="scorer-prod", canary_version=v2, canary_traffic_percent=10)
    client.force_login(alice)
    response = client.get(reverse("endpoints:model-detail", kwargs={"pk": model.pk}))
    text = response.text
    assert response.status_code == 200
    assert "s3://models/scorer/one" in text and "s3://models/scorer/two" in text
    assert "xgboost 2" in text
    assert "<code>champion</code> → v2" in text
    assert "40 rows, 2 features + prediction" in text
    assert "fraud/scorer-prod" in text and "canary on" in text
    endpoint_url = reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer-prod"})
    assert f'href="{endpoint_url}"' in text
    deploy = f'?project={project.pk}&amp;model_version={v2.pk}">Deploy v2</a>'
    assert deploy in text
    # reference profile per feature: type, bins or categories, missing share
    assert "amount" in text and "numeric" in text and "3 categories" in text and "0.0 %" in text


def test_model_detail_hides_endpoints_the_viewer_cannot_see(client, bob, project):
    model = RegisteredModelFactory(project=project)
    version = ModelVersionFactory(model=model)
    EndpointFactory(model_version=version, name="private-endpoint")
    grant(bob, "view", model)  # the model only, not its project
    client.force_login(bob)
    response = client.get(reverse("endpoints:model-detail", kwargs={"pk": model.pk}))
    assert response.status_code == 200
    assert "private-endpoint" not in response.text
    assert "not deployed" in response.text


@pytest.mark.parametrize("count", [3, 30])
def test_model_detail_query_count_is_bounded(client, alice, project, django_assert_max_num_queries, count):
    model = RegisteredModelFactory(project=project)
    for _ in range(count):
        version = ModelVersionFactory(model=model)
        ModelAliasFactory(version=version, name=f"alias-{version.version}")
        EndpointFactory(model_version=version)
    client.force_login(alice)
    with django_assert_max_num_queries(14):
        response = client.get(reverse("endpoints:model-detail", kwargs={"pk": model.pk}))
    assert len(response.context["versions"]) == count


# --- register a version ---------------------------------------------------------------------------

def test_register_version_with_a_reference_csv_stores_its_profile(client, alice, project):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    upload = SimpleUploadedFile("reference.csv", CSV_SAMPLE, content_type="text/csv")
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(prediction_column="score", aliases="champion, candidate",
                                        reference_file=upload))
    version = ModelVersion.objects.get(model=model)
    assert response.status_code == 302
    assert response["Location"].endswith("#version-1")
    assert version.reference_rows == 40
    assert [f["name"] for f in version.reference_profile["features"]] == ["amount", "country"]
    assert version.reference_profile["prediction"]["name"] == "score"
    assert version.input_signature == [{"name": "amount", "type": "numeric"},
                                       {"name": "country", "type": "categorical"}]
    assert sorted(a.name for a in version.aliases.all()) == ["candidate", "champion"]
    assert version.created_by == alice


def test_register_version_form_suggests_runtime_formats(client, alice, project):
    from endpoints.services.platform import sync_builtin_runtimes

    sync_builtin_runtimes()
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.get(reverse("endpoints:version-create", kwargs={"pk": model.pk}))
    assert 'list="model-format-options"' in response.text
    assert '<option value="sklearn">' in response.text


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "http://models.example.com/model.pkl", "ftp://x/y"])
def test_unsafe_storage_uri_is_a_field_error_and_nothing_stored(client, alice, project, uri):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(storage_uri=uri))
    assert response.status_code == 200
    errors = response.context["form"].errors["storage_uri"]
    assert "is not allowed" in errors[0] and "file:// and http:// are refused" in errors[0]
    assert "There is a problem" in response.text
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(("content", "name", "message"), [
    (b"a,b\n1,2\n3\n", "broken.csv", "Line 3 has 1 fields"),
    (b"", "empty.csv", "file is empty"),
    (b"\xff\xfe\x00garbage", "binary.csv", "not UTF-8"),
    (b"a,b\n1,2\n", "model.pkl", "Upload a CSV (.csv) or Parquet (.parquet) file"),
    (b"PAR1 not really parquet", "fake.parquet", "The Parquet file cannot be read"),
])
def test_bad_reference_file_is_an_error_on_the_file_field_and_no_version_created(
        client, alice, project, content, name, message):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(reference_file=SimpleUploadedFile(name, content)))
    assert response.status_code == 200
    errors = response.context["form"].errors["reference_file"]
    assert message in errors[0]
    assert not ModelVersion.objects.exists()


def test_prediction_column_missing_from_the_sample_is_a_file_error(client, alice, project):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(prediction_column="label",
                                        reference_file=SimpleUploadedFile("r.csv", CSV_SAMPLE)))
    assert "prediction column 'label' is not in the sample" in response.context["form"].errors["reference_file"][0]
    assert not ModelVersion.objects.exists()


def test_reference_file_over_the_limit_is_refused_before_parsing(client, alice, project, monkeypatch):
    monkeypatch.setattr("endpoints.forms.registry.REFERENCE_FILE_LIMIT", 100)
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(reference_file=SimpleUploadedFile("r.csv", CSV_SAMPLE)))
    assert "limited to 50 MB" in response.context["form"].errors["reference_file"][0]
    assert not ModelVersion.objects.exists()


def test_input_signature_that_is_not_json_is_a_clear_error(client, alice, project):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(input_signature='[{"name": "amount",}]'))
    error = response.context["form"].errors["input_signature"][0]
    assert error.startswith("This is not valid JSON") and "line 1, column" in error
    assert not ModelVersion.objects.exists()


def test_invalid_alias_on_a_new_version_stores_nothing(client, alice, project):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(aliases="Not Valid"))
    assert "is not a valid alias" in response.context["form"].errors["aliases"][0]
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("uri", ["javascript:alert(document.domain)", " JavaScript:alert(1)", "data:text/html,<b>x"])
def test_a_script_as_source_run_is_a_field_error(client, alice, project, uri):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                           version_form(source_run_uri=uri))
    assert "not a script" in response.context["form"].errors["source_run_uri"][0]
    assert not ModelVersion.objects.exists()
    ok = client.post(reverse("endpoints:version-create", kwargs={"pk": model.pk}),
                     version_form(source_run_uri="runs:/4f2a9c/model"))
    assert ok.status_code == 302 and ModelVersion.objects.get().source_run_uri == "runs:/4f2a9c/model"


# --- aliases -----------------------------------------------------------------------------------

def test_set_alias_moves_it_to_the_chosen_version(client, alice, project):
    model = RegisteredModelFactory(project=project)
    v1 = ModelVersionFactory(model=model)
    v2 = ModelVersionFactory(model=model)
    ModelAliasFactory(version=v1, name="champion")
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-alias", kwargs={"pk": model.pk, "version": 2}),
                           {"name": "champion"})
    assert response.status_code == 302
    assert ModelAlias.objects.get(model=model, name="champion").version == v2


def test_bad_alias_name_is_an_error_on_the_name_field(client, alice, project):
    model = RegisteredModelFactory(project=project)
    ModelVersionFactory(model=model)
    client.force_login(alice)
    response = client.post(reverse("endpoints:version-alias", kwargs={"pk": model.pk, "version": 1}),
                           {"name": "UPPER CASE"})
    assert "is not a valid alias" in response.context["form"].errors["name"][0]
    assert not ModelAlias.objects.exists()


def test_alias_on_a_missing_version_is_404(client, alice, project):
    model = RegisteredModelFactory(project=project)
    client.force_login(alice)
    response = client.get(reverse("endpoints:version-alias", kwargs={"pk": model.pk, "version": 7}))
    assert response.status_code == 404


# --- in a browser ---------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_data_scientist_registers_a_model_and_a_version_with_a_reference_csv(console_page, live_server, alice,
                                                                            tmp_path):
    from playwright.sync_api import expect

    from tests.factories import DEFAULT_PASSWORD
    from tests.fixtures.browser import login, screenshot

    project = ProjectFactory(name="fraud")
    grant_project(alice, project, "view", "deploy")
    sample = tmp_path / "reference.csv"
    sample.write_bytes(CSV_SAMPLE)
    page = console_page
    login(page, live_server, "alice", DEFAULT_PASSWORD)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    page.get_by_role("link", name="Register a model").first.click()
    page.get_by_label("Project").select_option(label="fraud")
    page.get_by_label("Name").fill("fraud-scorer")
    page.get_by_role("button", name="Register model").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("fraud-scorer")

    page.get_by_role("link", name="Register a version").click()
    page.get_by_label("Storage URI").fill("file:///etc/passwd")
    page.get_by_label("Model format").fill("sklearn")
    page.get_by_role("button", name="Register version").click()
    expect(page.get_by_role("alert")).to_contain_text("file:// and http:// are refused")
    screenshot(page, "registry-version-error")

    page.get_by_label("Storage URI").fill("s3://models/fraud/v1")
    page.get_by_label("Model format").fill("sklearn")
    page.get_by_label("Reference sample").set_input_files(str(sample))
    page.get_by_label("Prediction column").fill("score")
    page.get_by_label("Aliases").fill("champion")
    page.get_by_role("button", name="Register version").click()
    expect(page.get_by_role("status")).to_contain_text("Version 1 of fraud-scorer registered")
    expect(page.get_by_role("table", name="Reference profile of version 1 (40 rows)")).to_contain_text("country")
    expect(page.get_by_text("champion → v1")).to_be_visible()
    screenshot(page, "registry-model-detail")
