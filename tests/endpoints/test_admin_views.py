"""Platform-admin pages: clusters, projects (namespace onboarding, quotas, ingest-key rotation),
hardware profiles and runtimes."""

from __future__ import annotations

import pytest
from django.urls import reverse

from endpoints.models import Cluster, HardwareProfile, Project, ProjectQuota, ServingRuntime
from endpoints.services.platform import sync_builtin_runtimes
from tests.endpoints.registry_factories import (
    ClusterFactory,
    HardwareProfileFactory,
    ProjectFactory,
    RegisteredModelFactory,
    ServingRuntimeFactory,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "eyJhbGciOiJSUzI1NiJ9.very-secret-service-account-token"


@pytest.fixture
def role_admin(db):
    """A platform admin by role (not a superuser)."""
    from console.access import roles

    roles.ensure_global_roles()
    return UserFactory(username="platform-ops", roles=[roles.PLATFORM_ADMIN])


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def admin_urls() -> list[tuple[str, dict]]:
    cluster = ClusterFactory()
    project = ProjectFactory(cluster=cluster)
    profile = HardwareProfileFactory()
    runtime = ServingRuntimeFactory()
    return [
        ("endpoints:cluster-list", {}), ("endpoints:cluster-create", {}),
        ("endpoints:cluster-edit", {"pk": cluster.pk}),
        ("endpoints:project-create", {}),
        ("endpoints:project-quota", {"name": project.name}),
        ("endpoints:project-rotate-key", {"name": project.name}),
        ("endpoints:hardware-list", {}), ("endpoints:hardware-create", {}),
        ("endpoints:hardware-edit", {"pk": profile.pk}),
        ("endpoints:runtime-list", {}), ("endpoints:runtime-create", {}),
        ("endpoints:runtime-edit", {"pk": runtime.pk}),
    ]


# --- who may open the admin pages -------------------------------------------------------------------

def test_non_admins_get_403_on_every_admin_page_and_change_nothing(client, alice, auditor):
    urls = admin_urls()
    key = Project.objects.get().ingest_key
    for user in (alice, auditor):
        client.force_login(user)
        for name, kwargs in urls:
            url = reverse(name, kwargs=kwargs)
            response = client.get(url)
            assert response.status_code == 403, url
            # The page tells why (not a generic "your roles let you see this").
            assert "Only platform admins may open this page." in response.content.decode(), url
            assert client.post(url, {"name": "x"}).status_code == 403, url
    assert Project.objects.get().ingest_key == key


def test_non_admin_gets_403_not_404_for_an_admin_object_that_does_not_exist(client, alice):
    client.force_login(alice)
    assert client.get(reverse("endpoints:cluster-edit", kwargs={"pk": 999})).status_code == 403


def test_anonymous_is_sent_to_sign_in_from_admin_pages(client):
    for name, kwargs in admin_urls():
        response = client.get(reverse(name, kwargs=kwargs))
        assert response.status_code == 302
        assert reverse("login") in response["Location"]


def test_platform_admin_by_role_opens_every_admin_page(client, role_admin):
    client.force_login(role_admin)
    for name, kwargs in admin_urls():
        assert client.get(reverse(name, kwargs=kwargs)).status_code == 200, name


# --- clusters ----------------------------------------------------------------------------------------

def cluster_form(**overrides) -> dict:
    data = {"name": "gpu-east", "description": "", "kind": "kubernetes", "connection": "url",
            "kubeconfig_path": "", "kubeconfig_context": "", "api_url": "https://k8s.example.com:6443",
            "api_token": TOKEN, "ingress_domain": "models.example.com"}
    # Saved disabled: an enabled cluster is read first and k8s.example.com does not exist
    # (tests/endpoints/test_capabilities.py covers enabled clusters, reachable or not).
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_adds_a_cluster_and_the_token_is_never_rendered_back(admin_client):
    response = admin_client.post(reverse("endpoints:cluster-create"), cluster_form())
    assert response.status_code == 302
    cluster = Cluster.objects.get(name="gpu-east")
    assert cluster.api_token == TOKEN
    assert cluster.ingress_domain == "models.example.com"
    for url in (reverse("endpoints:cluster-list"), reverse("endpoints:cluster-edit", kwargs={"pk": cluster.pk})):
        page = admin_client.get(url)
        assert TOKEN not in page.text, url
        assert "very-secret" not in page.text, url
    assert "token stored" in admin_client.get(reverse("endpoints:cluster-list")).text


def test_a_rejected_cluster_form_does_not_echo_the_token(admin_client):
    response = admin_client.post(reverse("endpoints:cluster-create"), cluster_form(api_url=""))
    assert response.status_code == 200
    assert TOKEN not in response.text
    assert "needs the API server URL" in response.context["form"].errors["api_url"][0]
    assert not Cluster.objects.exists()


def test_blank_token_on_edit_keeps_the_stored_token(admin_client):
    cluster = ClusterFactory(name="gpu-east", connection="url", api_url="https://k8s.example.com", api_token=TOKEN)
    response = admin_client.post(reverse("endpoints:cluster-edit", kwargs={"pk": cluster.pk}),
                                 cluster_form(api_token="", ingress_domain="new.example.com"))
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.api_token == TOKEN
    assert cluster.ingress_domain == "new.example.com"


def test_new_token_on_edit_replaces_and_clear_removes_it(admin_client):
    cluster = ClusterFactory(name="gpu-east", connection="url", api_url="https://k8s.example.com", api_token=TOKEN)
    url = reverse("endpoints:cluster-edit", kwargs={"pk": cluster.pk})
    admin_client.post(url, cluster_form(api_token="replacement-token"))
    cluster.refresh_from_db()
    assert cluster.api_token == "replacement-token"
    admin_client.post(url, cluster_form(api_token="", clear_token="on"))
    cluster.refresh_from_db()
    assert cluster.api_token == ""


def test_cluster_name_duplicate_is_a_name_error(admin_client):
    ClusterFactory(name="gpu-east")
    response = admin_client.post(reverse("endpoints:cluster-create"), cluster_form())
    assert response.context["form"].errors["name"]
    assert Cluster.objects.count() == 1


def test_cluster_edit_of_a_missing_cluster_is_404_for_admins(admin_client):
    assert admin_client.get(reverse("endpoints:cluster-edit", kwargs={"pk": 999})).status_code == 404


@pytest.mark.parametrize("count", [3, 30])
def test_cluster_list_query_count_is_bounded(admin_client, django_assert_max_num_queries, count):
    for _ in range(count):
        ProjectFactory(cluster=ClusterFactory())
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("endpoints:cluster-list"))
    assert response.status_code == 200


# --- projects ----------------------------------------------------------------------------------------

@pytest.fixture
def fake_cluster(fake_apiserver):
    return ClusterFactory(name="sandbox", kind="sandbox", connection="url", api_url=fake_apiserver.url)


def test_creating_a_project_creates_its_labelled_namespace_on_the_cluster(admin_client, fake_cluster,
                                                                          fake_apiserver):
    from endpoints.cluster import ClusterClient

    profile = HardwareProfileFactory(name="a100")
    response = admin_client.post(reverse("endpoints:project-create"), {
        "name": "fraud", "display_name": "Fraud team", "description": "", "cluster": fake_cluster.pk,
        "namespace": "fraud-models", f"quota_{profile.pk}": "4"})
    assert response.status_code == 302
    project = Project.objects.get(name="fraud")
    assert response["Location"] == reverse("endpoints:project-detail", kwargs={"name": "fraud"})
    assert project.namespace == "fraud-models"
    assert ProjectQuota.objects.get(project=project).max_accelerators == 4
    namespace = ClusterClient.for_url(fake_apiserver.url).get_namespace("fraud-models")
    assert namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "inference-console"


def test_a_namespace_labelled_control_plane_is_refused_on_the_namespace_field(admin_client, fake_cluster,
                                                                              fake_apiserver):
    from endpoints.cluster import ClusterClient

    ClusterClient.for_url(fake_apiserver.url).apply({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "kserve-system", "labels": {"control-plane": "kserve-controller-manager"}}})
    response = admin_client.post(reverse("endpoints:project-create"), {
        "name": "sneaky", "cluster": fake_cluster.pk, "namespace": "kserve-system"})
    assert response.status_code == 200
    assert "'control-plane' label" in response.context["form"].errors["namespace"][0]
    assert not Project.objects.exists()


def test_an_unreachable_cluster_is_a_namespace_error_and_nothing_stored(admin_client):
    cluster = ClusterFactory(connection="url", api_url="http://127.0.0.1:9")
    response = admin_client.post(reverse("endpoints:project-create"), {"name": "fraud", "cluster": cluster.pk})
    assert response.status_code == 200
    assert "could not be reached" in response.context["form"].errors["namespace"][0]
    assert not Project.objects.exists()


def test_a_system_namespace_is_refused(admin_client):
    cluster = ClusterFactory()
    response = admin_client.post(reverse("endpoints:project-create"),
                                 {"name": "fraud", "cluster": cluster.pk, "namespace": "kube-system"})
    assert "system namespace" in response.context["form"].errors["namespace"][0]
    assert not Project.objects.exists()


def test_project_detail_masks_the_ingest_key_except_its_last_four_characters(admin_client):
    project = ProjectFactory(name="fraud")
    RegisteredModelFactory(project=project)
    response = admin_client.get(reverse("endpoints:project-detail", kwargs={"name": "fraud"}))
    assert response.status_code == 200
    assert project.ingest_key not in response.text
    assert project.ingest_key[:-4] not in response.text
    assert f"/ingest/kserve/••••••••{project.ingest_key[-4:]}/" in response.text
    assert "1 model" in response.text


def test_project_quotas_are_edited_per_hardware_profile(admin_client):
    project = ProjectFactory(name="fraud")
    a100, h100 = HardwareProfileFactory(name="a100"), HardwareProfileFactory(name="h100")
    ProjectQuota.objects.create(project=project, hardware_profile=a100, max_accelerators=2)
    url = reverse("endpoints:project-quota", kwargs={"name": "fraud"})
    response = admin_client.post(url, {f"quota_{a100.pk}": "", f"quota_{h100.pk}": "6"})
    assert response.status_code == 302
    assert dict(ProjectQuota.objects.filter(project=project).values_list("hardware_profile__name",
                                                                        "max_accelerators")) == {"h100": 6}
    response = admin_client.post(url, {f"quota_{a100.pk}": "-1", f"quota_{h100.pk}": "6"})
    assert response.context["form"].errors[f"quota_{a100.pk}"]


def test_rotating_the_ingest_key_asks_for_confirmation_first(admin_client):
    project = ProjectFactory(name="fraud")
    old = project.ingest_key
    url = reverse("endpoints:project-rotate-key", kwargs={"name": "fraud"})
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert "Are you sure?" in confirm.text and old not in confirm.text
    project.refresh_from_db()
    assert project.ingest_key == old

    response = admin_client.post(url, follow=True)
    project.refresh_from_db()
    assert project.ingest_key != old
    assert project.ingest_key not in response.text
    assert f"ends in {project.ingest_key[-4:]}" in response.text


def test_project_of_another_name_is_404_for_admins(admin_client):
    assert admin_client.get(reverse("endpoints:project-detail", kwargs={"name": "nope"})).status_code == 404


@pytest.mark.parametrize("count", [3, 30])
def test_project_list_query_count_is_bounded(admin_client, django_assert_max_num_queries, count):
    cluster = ClusterFactory()
    for _ in range(count):
        RegisteredModelFactory(project=ProjectFactory(cluster=cluster))
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("endpoints:project-list"))
    assert response.status_code == 200
    assert len(response.context["object_list"]) == min(count, 25)


# --- hardware profiles --------------------------------------------------------------------------------

def hardware_form(**overrides) -> dict:
    data = {"name": "a100", "display_name": "NVIDIA A100", "description": "",
            "accelerator_resource": "nvidia.com/gpu", "accelerator_product": "NVIDIA-A100-SXM4-80GB",
            "node_selector": '{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}',
            "tolerations": '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
            "default_cpu": "2", "default_memory": "8Gi", "max_cpu": "16", "max_memory": "128Gi",
            "max_accelerators_per_replica": "4", "capacity": "16", "enabled": "on"}
    data.update(overrides)
    return data


def test_admin_adds_a_hardware_profile_with_json_placement(admin_client):
    response = admin_client.post(reverse("endpoints:hardware-create"), hardware_form())
    assert response.status_code == 302
    profile = HardwareProfile.objects.get(name="a100")
    assert profile.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert profile.tolerations[0]["operator"] == "Exists"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("node_selector", '{"a": "b",}', "This is not valid JSON"),
    ("node_selector", '["a"]', "Enter an object"),
    ("node_selector", '{"a": 1}', "string values"),
    ("tolerations", '{"key": "x"}', "Enter a list"),
    ("tolerations", '["x"]', "toleration objects"),
    ("default_memory", "lots", ""),
    ("accelerator_resource", "gpu", "extended resource name"),
])
def test_bad_hardware_profile_input_is_a_clear_field_error_and_nothing_stored(admin_client, field, value, message):
    response = admin_client.post(reverse("endpoints:hardware-create"), hardware_form(**{field: value}))
    assert response.status_code == 200
    errors = response.context["form"].errors[field]
    assert message in errors[0]
    assert not HardwareProfile.objects.exists()


def test_hardware_profile_edit_shows_json_and_saves_changes(admin_client):
    profile = HardwareProfileFactory(name="a100", node_selector={"zone": "a"})
    url = reverse("endpoints:hardware-edit", kwargs={"pk": profile.pk})
    assert "&quot;zone&quot;: &quot;a&quot;" in admin_client.get(url).text
    response = admin_client.post(url, hardware_form(capacity="32", node_selector=""))
    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.capacity, profile.node_selector) == (32, {})


@pytest.mark.parametrize("count", [3, 30])
def test_hardware_list_query_count_is_bounded(admin_client, django_assert_max_num_queries, count):
    for _ in range(count):
        HardwareProfileFactory()
    with django_assert_max_num_queries(7):
        assert admin_client.get(reverse("endpoints:hardware-list")).status_code == 200


# --- runtimes ------------------------------------------------------------------------------------------

def runtime_form(**overrides) -> dict:
    data = {"name": "my-onnx", "display_name": "", "description": "",
            "supported_formats": '[{"name": "onnx", "version": "1", "autoSelect": true, "priority": 3}]',
            "protocols": ["v2"], "openai_route_prefix": "", "container_image": "registry.example.com/onnx:2",
            "container_args": '["--model_name={{.Name}}"]'}
    data.update(overrides)
    return data


def test_built_in_runtimes_are_listed_and_only_disable_or_describe_can_change(admin_client):
    sync_builtin_runtimes()
    listing = admin_client.get(reverse("endpoints:runtime-list"))
    assert "kserve-sklearnserver" in listing.text and "Built-in" in listing.text
    runtime = ServingRuntime.objects.get(name="kserve-sklearnserver")
    url = reverse("endpoints:runtime-edit", kwargs={"pk": runtime.pk})
    form = admin_client.get(url).context["form"]
    assert sorted(form.fields) == ["description", "disabled"]
    formats = runtime.supported_formats
    response = admin_client.post(url, {"description": "Do not use", "disabled": "on",
                                       "supported_formats": "[]", "container_image": "evil:latest"})
    assert response.status_code == 302
    runtime.refresh_from_db()
    assert runtime.disabled and runtime.description == "Do not use"
    assert runtime.supported_formats == formats and runtime.container_image != "evil:latest"


def test_admin_adds_and_edits_a_custom_runtime(admin_client):
    response = admin_client.post(reverse("endpoints:runtime-create"), runtime_form())
    assert response.status_code == 302
    runtime = ServingRuntime.objects.get(name="my-onnx")
    assert not runtime.built_in
    assert runtime.supported_formats[0]["priority"] == 3 and runtime.protocols == ["v2"]
    response = admin_client.post(reverse("endpoints:runtime-edit", kwargs={"pk": runtime.pk}),
                                 runtime_form(container_image="registry.example.com/onnx:3"))
    assert response.status_code == 302
    runtime.refresh_from_db()
    assert runtime.container_image == "registry.example.com/onnx:3"


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"supported_formats": "[{name: onnx}]"}, "supported_formats", "This is not valid JSON"),
    ({"supported_formats": ""}, "supported_formats", "required"),
    ({"supported_formats": '[{"version": "1"}]'}, "supported_formats", "Each format needs a name"),
    ({"supported_formats": '[{"name": "onnx", "priority": 0}]'}, "supported_formats", "at least 1"),
    ({"name": "kserve-sklearnserver"}, "name", "already exists"),
    ({"container_args": '"--flag"'}, "container_args", "Enter a list"),
])
def test_bad_custom_runtime_is_a_field_error_and_nothing_stored(admin_client, overrides, field, message):
    sync_builtin_runtimes()
    before = ServingRuntime.objects.count()
    response = admin_client.post(reverse("endpoints:runtime-create"), runtime_form(**overrides))
    assert response.status_code == 200
    assert message in response.context["form"].errors[field][0]
    assert ServingRuntime.objects.count() == before


def test_runtime_list_query_count_is_bounded(admin_client, django_assert_max_num_queries):
    sync_builtin_runtimes()
    for _ in range(20):
        ServingRuntimeFactory()
    with django_assert_max_num_queries(7):
        assert admin_client.get(reverse("endpoints:runtime-list")).status_code == 200


# --- in a browser ---------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_adds_a_cluster_creates_a_project_and_rotates_its_key(console_page, live_server, admin_user,
                                                                   fake_apiserver):
    from playwright.sync_api import expect

    from tests.factories import DEFAULT_PASSWORD
    from tests.fixtures.browser import login, screenshot

    HardwareProfileFactory(name="a100", display_name="NVIDIA A100")
    sync_builtin_runtimes()
    page = console_page
    login(page, live_server, "admin", DEFAULT_PASSWORD)

    page.goto(live_server.url + reverse("endpoints:cluster-create"))
    page.get_by_label("Name", exact=True).fill("sandbox")
    page.get_by_label("Sandbox (simulated)").check()
    page.get_by_label("API server URL and token").check()
    page.get_by_role("textbox", name="API server URL").fill(fake_apiserver.url)
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Add cluster").click()
    expect(page.get_by_role("status")).to_contain_text("Cluster sandbox added")
    assert TOKEN not in page.content()
    screenshot(page, "admin-cluster-list")

    page.get_by_role("link", name="Projects").last.click()
    page.get_by_role("link", name="Create a project").first.click()
    page.get_by_label("Name", exact=True).fill("fraud")
    page.get_by_label("Cluster").select_option(label="sandbox")
    page.get_by_label("NVIDIA A100 quota").fill("4")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Project fraud")
    key = Project.objects.get(name="fraud").ingest_key
    assert key not in page.content()
    screenshot(page, "admin-project-detail")

    page.get_by_role("link", name="Rotate ingest key").click()
    expect(page.get_by_role("heading", name="Are you sure?")).to_be_visible()
    screenshot(page, "admin-rotate-key")
    page.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_role("status")).to_contain_text("Ingest key rotated")
    assert Project.objects.get(name="fraud").ingest_key != key

    page.goto(live_server.url + reverse("endpoints:hardware-create"))
    page.get_by_label("Name", exact=True).fill("h100")
    page.get_by_label("Display name").fill("NVIDIA H100")
    page.get_by_label("Node selector").fill('{"gpu": "h100",}')
    page.get_by_role("button", name="Add profile").click()
    expect(page.get_by_role("alert")).to_contain_text("This is not valid JSON")
    screenshot(page, "admin-hardware-error")

    page.goto(live_server.url + reverse("endpoints:runtime-list"))
    expect(page.get_by_role("link", name="Disable or describe kserve-sklearnserver")).to_be_visible()
    screenshot(page, "admin-runtime-list")


def test_a_project_cannot_take_the_name_of_the_create_page(admin_client):
    cluster = ClusterFactory()
    response = admin_client.post(reverse("endpoints:project-create"), {"name": "new", "cluster": cluster.pk})
    assert response.status_code == 200
    assert "reserved" in response.context["form"].errors["name"][0]
    assert not Project.objects.exists()
    # The create page stays the create page.
    assert admin_client.get(reverse("endpoints:project-create")).context["form"] is not None
