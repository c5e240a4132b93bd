"""``/api/v1/`` for clusters, projects, models, versions, runtimes and hardware profiles."""

from __future__ import annotations

import io
import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from endpoints.models import (
    Cluster,
    HardwareProfile,
    ModelAlias,
    ModelVersion,
    Project,
    RegisteredModel,
    ServingRuntime,
)
from endpoints.services.platform import sync_builtin_runtimes
from tests.endpoints.registry_factories import (
    CSV_SAMPLE,
    ClusterFactory,
    EndpointFactory,
    HardwareProfileFactory,
    ModelAliasFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
    ServingRuntimeFactory,
    grant,
    grant_project,
)

pytestmark = pytest.mark.django_db

TOKEN = "eyJhbGciOiJSUzI1NiJ9.very-secret-service-account-token"


@pytest.fixture
def api():
    return APIClient()


def as_user(api, user) -> APIClient:
    api.force_login(user)
    return api


@pytest.fixture
def project(alice):
    project = ProjectFactory(name="fraud")
    grant_project(alice, project, "view", "deploy")
    return project


# --- models ---------------------------------------------------------------------------------------

def test_anonymous_gets_401_from_the_registry_api(api):
    response = api.get("/api/v1/models/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_model_list_holds_only_visible_models_and_counts_them_before_paginating(api, alice, project):
    RegisteredModelFactory(project=project, name="scorer")
    RegisteredModelFactory(project=ProjectFactory(), name="hidden")
    body = as_user(api, alice).get("/api/v1/models/").json()
    assert body["count"] == 1
    assert [m["name"] for m in body["results"]] == ["scorer"]


def test_model_list_filters_by_project_and_search(api, alice, project):
    other = ProjectFactory(name="churn")
    grant_project(alice, other, "view")
    RegisteredModelFactory(project=project, name="fraud-scorer", description="boosted trees")
    RegisteredModelFactory(project=other, name="churn-model")
    as_user(api, alice)
    names = lambda params: [m["name"] for m in api.get("/api/v1/models/", params).json()["results"]]  # noqa: E731
    assert names({"project": other.pk}) == ["churn-model"]
    assert names({"search": "boosted"}) == ["fraud-scorer"]
    # By name too, as the endpoint list takes it; a project the caller cannot see gives nothing.
    assert names({"project": "churn"}) == ["churn-model"]
    hidden = ProjectFactory(name="hidden")
    RegisteredModelFactory(project=hidden, name="secret-model")
    assert names({"project": "hidden"}) == [] and names({"project": hidden.pk}) == []


@pytest.mark.parametrize("count", [3, 30])
def test_model_list_query_count_is_bounded(api, alice, project, django_assert_max_num_queries, count):
    for _ in range(count):
        ModelVersionFactory(model=RegisteredModelFactory(project=project, owner=alice))
    as_user(api, alice)
    with django_assert_max_num_queries(6):
        body = api.get("/api/v1/models/").json()
    assert body["count"] == count
    assert body["results"][0]["version_count"] == 1 and body["results"][0]["owner"] == "alice"


def test_register_a_model_in_a_deployable_project(api, alice, project):
    response = as_user(api, alice).post("/api/v1/models/", {"project": project.pk, "name": "scorer",
                                                           "task": "regression"})
    assert response.status_code == 201, response.json()
    assert response.json()["project_name"] == "fraud" and response.json()["version_count"] == 0
    assert RegisteredModel.objects.get(name="scorer").owner == alice


def test_registering_a_model_in_an_invisible_project_is_refused_as_nonexistent(api, alice, project):
    hidden = ProjectFactory(name="hidden")
    response = as_user(api, alice).post("/api/v1/models/", {"project": hidden.pk, "name": "sneaky",
                                                           "task": "classification"})
    assert response.status_code == 400
    assert "does not exist" in response.json()["errors"]["project"][0]
    assert not RegisteredModel.objects.exists()


def test_registering_a_model_in_a_view_only_project_is_403(api, bob, project):
    grant_project(bob, project, "view")
    response = as_user(api, bob).post("/api/v1/models/", {"project": project.pk, "name": "sneaky",
                                                         "task": "classification"})
    assert response.status_code == 403
    assert not RegisteredModel.objects.exists()


def test_model_validation_messages_match_the_forms(api, alice, project):
    response = as_user(api, alice).post("/api/v1/models/", {"project": project.pk, "name": "Bad Name",
                                                           "task": "classification"})
    assert response.status_code == 400
    assert response.json()["errors"]["name"] == ["Use lowercase letters, digits and '-', starting with a letter."]


def test_outsider_gets_404_on_another_projects_model_and_versions_by_id(api, outsider, project):
    model = RegisteredModelFactory(project=project)
    version = ModelVersionFactory(model=model)
    as_user(api, outsider)
    assert api.get(f"/api/v1/models/{model.pk}/").status_code == 404
    assert api.get(f"/api/v1/models/{model.pk}/versions/").status_code == 404
    assert api.post(f"/api/v1/models/{model.pk}/versions/",
                    {"storage_uri": "s3://x/y", "model_format": "sklearn"}).status_code == 404
    assert api.post(f"/api/v1/models/{model.pk}/aliases/", {"name": "champion", "version": 1}).status_code == 404
    assert api.get(f"/api/v1/versions/{version.pk}/").status_code == 404
    assert api.get("/api/v1/versions/").json()["count"] == 0
    assert ModelVersion.objects.count() == 1 and not ModelAlias.objects.exists()


# --- versions -----------------------------------------------------------------------------------

def test_register_a_version_with_a_multipart_reference_upload(api, alice, project):
    model = RegisteredModelFactory(project=project)
    response = as_user(api, alice).post(f"/api/v1/models/{model.pk}/versions/", {
        "storage_uri": "s3://models/scorer/v1", "model_format": "sklearn", "format_version": "1",
        "prediction_column": "score", "aliases": ["champion", "latest"],
        "reference_file": SimpleUploadedFile("sample.csv", CSV_SAMPLE, content_type="text/csv"),
    }, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == 1 and body["aliases"] == ["champion", "latest"]
    assert body["reference"] == {"rows": 40, "features": 2, "has_prediction": True}
    assert [f["name"] for f in body["reference_profile"]["features"]] == ["amount", "country"]
    assert ModelVersion.objects.get(model=model).reference_filename == "sample.csv"


def test_register_a_version_with_a_json_body_and_signature(api, alice, project):
    model = RegisteredModelFactory(project=project)
    response = as_user(api, alice).post(f"/api/v1/models/{model.pk}/versions/", {
        "storage_uri": "hf://meta-llama/Llama-3.1-8B-Instruct", "model_format": "huggingface",
        "input_signature": [{"name": "prompt", "type": "categorical"}]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["input_signature"] == [{"name": "prompt", "type": "categorical"}]
    assert response.json()["reference"] is None


def test_multipart_signature_may_be_a_json_string_with_a_clear_parse_error(api, alice, project):
    model = RegisteredModelFactory(project=project)
    as_user(api, alice)
    response = api.post(f"/api/v1/models/{model.pk}/versions/", {
        "storage_uri": "s3://m/v1", "model_format": "sklearn", "input_signature": '[{"name": "amount"'},
        format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"]["input_signature"][0].startswith("This is not valid JSON")
    response = api.post(f"/api/v1/models/{model.pk}/versions/", {
        "storage_uri": "s3://m/v1", "model_format": "sklearn",
        "input_signature": '[{"name": "amount", "type": "numeric"}]'}, format="multipart")
    assert response.status_code == 201
    assert response.json()["input_signature"] == [{"name": "amount", "type": "numeric"}]


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "http://example.com/model.pkl"])
def test_unsafe_storage_uri_is_400_with_the_forms_message_and_nothing_stored(api, alice, project, uri):
    model = RegisteredModelFactory(project=project)
    response = as_user(api, alice).post(f"/api/v1/models/{model.pk}/versions/",
                                        {"storage_uri": uri, "model_format": "sklearn"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "file:// and http:// are refused" in body["errors"]["storage_uri"][0]
    assert body["detail"].startswith("storage_uri: ")
    assert not ModelVersion.objects.exists()


def test_bad_csv_is_400_on_reference_file_and_no_version_created(api, alice, project):
    model = RegisteredModelFactory(project=project)
    response = as_user(api, alice).post(f"/api/v1/models/{model.pk}/versions/", {
        "storage_uri": "s3://models/v1", "model_format": "sklearn",
        "reference_file": SimpleUploadedFile("bad.csv", b"a,b\n1,2\n3\n")}, format="multipart")
    assert response.status_code == 400
    assert "Line 3 has 1 fields" in response.json()["errors"]["reference_file"][0]
    assert not ModelVersion.objects.exists()


def test_oversized_reference_file_is_refused(api, alice, project, monkeypatch):
    monkeypatch.setattr("endpoints.api.registry_serializers.REFERENCE_FILE_LIMIT", 100)
    model = RegisteredModelFactory(project=project)
    response = as_user(api, alice).post(f"/api/v1/models/{model.pk}/versions/", {
        "storage_uri": "s3://models/v1", "model_format": "sklearn",
        "reference_file": SimpleUploadedFile("r.csv", CSV_SAMPLE)}, format="multipart")
    assert response.status_code == 400
    assert "limited to 50 MB" in response.json()["errors"]["reference_file"][0]


def test_parquet_reference_is_profiled(api, alice, project):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, None], "c": ["a", "b", "a", "a"]}), buffer)
    model = RegisteredModelFactory(project=project)
    response = as_user(api, alice).post(f"/api/v1/models/{model.pk}/versions/", {
        "storage_uri": "gs://bucket/model", "model_format": "xgboost",
        "reference_file": SimpleUploadedFile("ref.parquet", buffer.getvalue())}, format="multipart")
    assert response.status_code == 201, response.json()
    features = {f["name"]: f for f in response.json()["reference_profile"]["features"]}
    assert features["x"]["type"] == "numeric" and features["x"]["missing"] == 0.25


def test_viewer_reads_versions_but_gets_403_registering_one(api, bob, project):
    grant_project(bob, project, "view")
    model = RegisteredModelFactory(project=project)
    ModelVersionFactory(model=model)
    as_user(api, bob)
    assert api.get(f"/api/v1/models/{model.pk}/versions/").json()["count"] == 1
    response = api.post(f"/api/v1/models/{model.pk}/versions/", {"storage_uri": "s3://m/v2",
                                                                 "model_format": "sklearn"}, format="json")
    assert response.status_code == 403
    assert ModelVersion.objects.count() == 1


def test_version_lists_show_only_endpoints_the_caller_can_see(api, bob, project):
    model = RegisteredModelFactory(project=project)
    version = ModelVersionFactory(model=model)
    EndpointFactory(model_version=version, name="private")
    grant(bob, "view", model)
    body = as_user(api, bob).get(f"/api/v1/versions/{version.pk}/").json()
    assert body["deployments"] == []


@pytest.mark.parametrize("count", [3, 30])
def test_version_lists_query_count_is_bounded(api, alice, project, django_assert_max_num_queries, count):
    model = RegisteredModelFactory(project=project)
    for _ in range(count):
        version = ModelVersionFactory(model=model)
        ModelAliasFactory(version=version, name=f"a{version.version}")
        EndpointFactory(model_version=version, canary_version=version)
    as_user(api, alice)
    with django_assert_max_num_queries(10):
        nested = api.get(f"/api/v1/models/{model.pk}/versions/").json()
    with django_assert_max_num_queries(10):
        flat = api.get("/api/v1/versions/", {"model": model.pk}).json()
    assert nested["count"] == flat["count"] == count
    assert nested["results"][0]["deployments"][0]["role"] == "primary"
    assert {d["role"] for d in flat["results"][0]["deployments"]} == {"primary", "canary"}


def test_set_an_alias_through_the_api(api, alice, project):
    model = RegisteredModelFactory(project=project)
    v1, v2 = ModelVersionFactory(model=model), ModelVersionFactory(model=model)
    ModelAliasFactory(version=v1, name="champion")
    as_user(api, alice)
    response = api.post(f"/api/v1/models/{model.pk}/aliases/", {"name": "champion", "version": 2})
    assert response.status_code == 200
    assert ModelAlias.objects.get(name="champion").version == v2
    assert api.post(f"/api/v1/models/{model.pk}/aliases/", {"name": "x", "version": 9}).status_code == 400
    bad = api.post(f"/api/v1/models/{model.pk}/aliases/", {"name": "Not Valid", "version": 1})
    assert "is not a valid alias" in bad.json()["errors"]["name"][0]


# --- clusters -----------------------------------------------------------------------------------

def test_clusters_are_for_platform_admins_only(api, alice):
    ClusterFactory()
    as_user(api, alice)
    assert api.get("/api/v1/clusters/").status_code == 403
    assert api.post("/api/v1/clusters/", {"name": "x"}).status_code == 403


def test_the_cluster_token_never_appears_in_any_response(api, admin_user):
    as_user(api, admin_user)
    # Saved disabled: an enabled cluster is read first, and k8s.example.com does not exist.
    responses = [api.post("/api/v1/clusters/", {"name": "gpu-east", "kind": "kubernetes", "connection": "url",
                                                "api_url": "https://k8s.example.com:6443", "api_token": TOKEN,
                                                "enabled": False})]
    assert responses[0].status_code == 201, responses[0].json()
    pk = responses[0].json()["id"]
    responses += [
        api.get("/api/v1/clusters/"), api.get(f"/api/v1/clusters/{pk}/"),
        api.patch(f"/api/v1/clusters/{pk}/", {"ingress_domain": "models.example.com"}),
        api.put(f"/api/v1/clusters/{pk}/", {"name": "gpu-east", "connection": "url",
                                            "api_url": "https://k8s.example.com:6443", "enabled": False}),
        api.get("/api/schema/"),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        assert TOKEN not in response.content.decode()
        assert "very-secret" not in response.content.decode()
    cluster = Cluster.objects.get(pk=pk)
    assert cluster.api_token == TOKEN  # omitted on update: kept
    assert responses[2].json()["has_token"] is True
    api.patch(f"/api/v1/clusters/{pk}/", {"api_token": ""})
    cluster.refresh_from_db()
    assert cluster.api_token == ""


def test_an_enabled_cluster_the_console_cannot_reach_is_refused_with_the_reason(api, admin_user):
    as_user(api, admin_user)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    response = api.post("/api/v1/clusters/", {"name": "gpu-east", "connection": "url", "api_token": TOKEN,
                                              "api_url": f"http://127.0.0.1:{port}"})
    assert response.status_code == 400
    assert "Not saved as enabled: the cluster did not answer" in response.json()["errors"]["enabled"][0]
    assert TOKEN not in response.content.decode()
    assert not Cluster.objects.filter(name="gpu-east").exists()


def test_cluster_rename_and_missing_url_are_refused(api, admin_user):
    cluster = ClusterFactory(name="gpu-east")
    as_user(api, admin_user)
    assert "cannot change" in api.patch(f"/api/v1/clusters/{cluster.pk}/", {"name": "other"}).json()["errors"]["name"][0]
    response = api.post("/api/v1/clusters/", {"name": "no-url", "connection": "url"})
    assert response.status_code == 400
    assert "needs the API server URL" in response.json()["errors"]["api_url"][0]


@pytest.mark.parametrize("count", [3, 30])
def test_cluster_list_query_count_is_bounded(api, admin_user, django_assert_max_num_queries, count):
    for _ in range(count):
        ProjectFactory(cluster=ClusterFactory())
    as_user(api, admin_user)
    with django_assert_max_num_queries(5):
        assert api.get("/api/v1/clusters/").json()["count"] == count


# --- projects ---------------------------------------------------------------------------------------

def test_project_list_holds_only_visible_projects_and_masks_the_ingest_key(api, alice, project):
    ProjectFactory(name="hidden")
    body = as_user(api, alice).get("/api/v1/projects/").json()
    assert [p["name"] for p in body["results"]] == ["fraud"]
    assert project.ingest_key not in str(body)
    assert body["results"][0]["payload_logger_url"].endswith(f"••••••••{project.ingest_key[-4:]}/")


def test_outsider_gets_404_on_a_project_by_id(api, outsider, project):
    assert as_user(api, outsider).get(f"/api/v1/projects/{project.pk}/").status_code == 404


def test_only_admins_create_projects_set_quotas_or_rotate_keys(api, alice, project):
    cluster = ClusterFactory()
    profile = HardwareProfileFactory()
    as_user(api, alice)
    key = project.ingest_key
    assert api.post("/api/v1/projects/", {"name": "new", "cluster": cluster.pk}).status_code == 403
    assert api.post(f"/api/v1/projects/{project.pk}/quota/", {"hardware_profile": profile.pk,
                                                              "max_accelerators": 99}).status_code == 403
    assert api.post(f"/api/v1/projects/{project.pk}/rotate-ingest-key/").status_code == 403
    project.refresh_from_db()
    assert project.ingest_key == key and not project.quotas.exists() and Project.objects.count() == 1


def test_admin_creates_a_project_whose_namespace_is_created_on_the_cluster(api, admin_user, fake_apiserver):
    from endpoints.cluster import ClusterClient

    cluster = ClusterFactory(connection="url", api_url=fake_apiserver.url)
    profile = HardwareProfileFactory(name="a100")
    response = as_user(api, admin_user).post("/api/v1/projects/", {
        "name": "fraud", "cluster": cluster.pk, "quotas": [{"hardware_profile": profile.pk, "max_accelerators": 8}]},
        format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["namespace"] == "fraud"
    assert response.json()["quotas"] == [{"hardware_profile": profile.pk, "hardware_profile_name": "a100",
                                          "max_accelerators": 8}]
    assert ClusterClient.for_url(fake_apiserver.url).get_namespace("fraud") is not None

    ClusterClient.for_url(fake_apiserver.url).apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "kserve", "labels": {"control-plane": "kserve-controller-manager"}}})
    refused = api.post("/api/v1/projects/", {"name": "other", "cluster": cluster.pk, "namespace": "kserve"},
                       format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["namespace"]
    assert not Project.objects.filter(name="other").exists()


def test_admin_sets_a_quota_and_rotates_the_key(api, admin_user):
    project = ProjectFactory(name="fraud")
    profile = HardwareProfileFactory()
    old = project.ingest_key
    as_user(api, admin_user)
    body = api.post(f"/api/v1/projects/{project.pk}/quota/", {"hardware_profile": profile.pk,
                                                              "max_accelerators": 4}).json()
    assert body["quotas"][0]["max_accelerators"] == 4
    response = api.post(f"/api/v1/projects/{project.pk}/rotate-ingest-key/")
    project.refresh_from_db()
    assert project.ingest_key != old
    assert project.ingest_key not in response.content.decode()


@pytest.mark.parametrize("count", [3, 30])
def test_project_list_query_count_is_bounded(api, admin_user, django_assert_max_num_queries, count):
    cluster = ClusterFactory()
    profile = HardwareProfileFactory()
    for _ in range(count):
        ProjectFactory(cluster=cluster).quotas.create(hardware_profile=profile, max_accelerators=2)
    as_user(api, admin_user)
    with django_assert_max_num_queries(6):
        assert api.get("/api/v1/projects/").json()["count"] == count


# --- runtimes and hardware profiles -----------------------------------------------------------------------

def test_everyone_reads_runtimes_and_profiles_but_only_admins_write(api, alice):
    sync_builtin_runtimes()
    HardwareProfileFactory()
    as_user(api, alice)
    assert api.get("/api/v1/runtimes/").json()["count"] > 5
    assert api.get("/api/v1/hardware-profiles/").json()["count"] == 1
    assert api.post("/api/v1/runtimes/", {"name": "x"}).status_code == 403
    assert api.post("/api/v1/hardware-profiles/", {"name": "x"}).status_code == 403


def test_built_in_runtime_may_be_disabled_but_not_redefined(api, admin_user):
    sync_builtin_runtimes()
    runtime = ServingRuntime.objects.get(name="kserve-sklearnserver")
    as_user(api, admin_user)
    assert api.patch(f"/api/v1/runtimes/{runtime.pk}/", {"disabled": True}).json()["disabled"] is True
    response = api.patch(f"/api/v1/runtimes/{runtime.pk}/", {"supported_formats": [{"name": "evil"}]}, format="json")
    assert response.status_code == 400
    assert "only disable them" in response.json()["detail"]
    # a PUT repeating the unchanged values is not a change
    current = api.get(f"/api/v1/runtimes/{runtime.pk}/").json()
    writable = {k: current[k] for k in ("name", "display_name", "description", "supported_formats", "protocols",
                                        "openai_compatible", "openai_route_prefix", "container_image",
                                        "container_args", "disabled")}
    assert api.put(f"/api/v1/runtimes/{runtime.pk}/", writable, format="json").status_code == 200


def test_admin_adds_a_custom_runtime_with_the_services_checks(api, admin_user):
    as_user(api, admin_user)
    ok = api.post("/api/v1/runtimes/", {"name": "my-onnx", "supported_formats": [{"name": "onnx", "version": "1"}],
                                        "protocols": ["v2"], "container_image": "registry.example.com/onnx:1"},
                  format="json")
    assert ok.status_code == 201, ok.json()
    assert ok.json()["built_in"] is False
    bad = api.post("/api/v1/runtimes/", {"name": "no-image", "supported_formats": [{"name": "onnx"}]}, format="json")
    assert bad.status_code == 400 and "container_image" in bad.json()["errors"]


def test_hardware_profile_errors_are_field_errors_and_nothing_stored(api, admin_user):
    as_user(api, admin_user)
    response = api.post("/api/v1/hardware-profiles/", {"name": "a100", "display_name": "A100",
                                                       "accelerator_resource": "nvidia.com/gpu",
                                                       "tolerations": {"key": "x"}}, format="json")
    assert response.status_code == 400
    assert "Enter a list" in response.json()["errors"]["tolerations"][0]
    response = api.post("/api/v1/hardware-profiles/", {"name": "a100", "display_name": "A100",
                                                       "node_selector": {"zone": 3}}, format="json")
    assert "string values" in response.json()["errors"]["node_selector"][0]
    assert not HardwareProfile.objects.exists()
    response = api.post("/api/v1/hardware-profiles/", {"name": "a100", "display_name": "A100",
                                                       "accelerator_resource": "nvidia.com/gpu",
                                                       "max_accelerators_per_replica": 4, "capacity": 16},
                        format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("count", [3, 30])
def test_catalog_lists_query_count_is_bounded(api, alice, django_assert_max_num_queries, count):
    for _ in range(count):
        HardwareProfileFactory()
        ServingRuntimeFactory()
    as_user(api, alice)
    with django_assert_max_num_queries(4):
        assert api.get("/api/v1/hardware-profiles/").json()["count"] == count
    with django_assert_max_num_queries(4):
        assert api.get("/api/v1/runtimes/").json()["count"] == count
