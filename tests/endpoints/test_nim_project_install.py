"""An Owner installs a NIM runtime in their project's namespace (docs/nim.md), with an NGC
connection available to that project; Viewers, Deployers and outsiders cannot, from the page or
the API; the runtime serves that project only, and its key appears in no answer."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from endpoints.models import HardwareProfile, ServingRuntime
from endpoints.services.connections import connection_create
from tests.endpoints.connection_factories import build

pytestmark = pytest.mark.django_db
NGC_KEY = "nvapi-OWNERSECRET-key"  # noqa: S105 - a test value
MARKER = "OWNERSECRET"


@pytest.fixture
def w():
    w = build()
    w.ngc = connection_create(actor=w.owner, project=w.project, name="fraud-ngc", kind="ngc",
                              secrets={"api_key": NGC_KEY})
    w.other_ngc = connection_create(actor=w.other_owner, project=w.other_project, name="hidden-ngc", kind="ngc",
                                    secrets={"api_key": "nvapi-other-key"})
    w.a100 = HardwareProfile.objects.create(
        name="a100-80", display_name="A100 80 GB", accelerator_resource="nvidia.com/gpu",
        accelerator_product="NVIDIA-A100-SXM4-80GB", node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        max_accelerators_per_replica=4, max_cpu="16", max_memory="64Gi")
    return w


def _api_install(client, user, body):
    client.force_login(user)
    return client.post(reverse("api-nim-runtime-list"), json.dumps(body), content_type="application/json")


def test_an_owner_installs_a_nim_for_the_project_from_the_page_with_the_cache(client, w):
    client.force_login(w.owner)
    url = reverse("endpoints:project-nim-install", kwargs={"name": w.project.name})
    page = client.get(url)
    assert page.status_code == 200
    offered = [c.name for c in page.context["form"].fields["connection"].queryset]
    assert offered == ["fraud-ngc"]  # the project's own; never another project's
    response = client.post(url, {"nim": "llama3-8b-instruct@1.0.0", "connection": w.ngc.pk,
                                 "cache_name": "nvidia-nim-pvc", "cache_create": "on", "cache_size": "300Gi",
                                 "cache_access_mode": "ReadWriteMany"})
    assert response.status_code == 302, response.content.decode()[:2000]
    runtime = ServingRuntime.objects.get(project=w.project)
    assert runtime.name == "nvidia-nim-llama3-8b-instruct-1.0.0-fraud"
    assert runtime.nim["cache"] == {"name": "nvidia-nim-pvc", "create": True, "size": "300Gi", "storage_class": "",
                                    "access_mode": "ReadWriteMany"}
    event = AuditEvent.objects.get(action="runtime.create")
    assert str(event.actor_id) == str(w.owner.pk) and str(event.project_id) == str(w.project.pk)
    assert event.details["new"]["project"] == "fraud" and MARKER not in json.dumps(event.details)
    # The Deployer deploys it in the project; the plan names the claim the console applies.
    client.force_login(w.deployer)
    planned = client.post(reverse("endpoints:nim-deploy"), {
        "project": w.project.pk, "runtime": runtime.pk, "name": "planned", "hardware_profile": w.a100.pk,
        "accelerator_count": 1, "deployment_mode": "Standard", "min_replicas": 1, "max_replicas": 1})
    assert planned.status_code == 302 and "/plan/" in planned["Location"]
    plan = client.get(planned["Location"]).content.decode()
    assert "the console applies PersistentVolumeClaim nvidia-nim-pvc (300Gi, ReadWriteMany" in plan
    assert MARKER not in plan
    response = client.post(reverse("api-nim-runtime-deploy", kwargs={"pk": runtime.pk}),
                           json.dumps({"project": w.project.pk, "name": "chat", "hardware_profile": w.a100.pk}),
                           content_type="application/json")
    assert response.status_code == 201, response.content
    assert w.project.endpoints.get(name="chat").runtime == runtime
    assert MARKER not in response.content.decode()


@pytest.mark.parametrize("persona", ["viewer", "deployer", "outsider", "other_owner"])
def test_a_viewer_deployer_or_outsider_cannot_install_a_nim_for_the_project(client, w, persona):
    user = getattr(w, persona)
    client.force_login(user)
    page = client.get(reverse("endpoints:project-nim-install", kwargs={"name": w.project.name}))
    posted = client.post(reverse("endpoints:project-nim-install", kwargs={"name": w.project.name}),
                         {"nim": "llama3-8b-instruct@1.0.0", "connection": w.ngc.pk, "cache_name": "nvidia-nim-pvc"})
    api = _api_install(client, user, {"project": w.project.pk, "nim": "llama3-8b-instruct@1.0.0",
                                      "connection": w.ngc.pk})
    without_project = _api_install(client, user, {"nim": "llama3-8b-instruct@1.0.0", "connection": w.ngc.pk})
    sees_project = persona in ("viewer", "deployer")
    assert (page.status_code, posted.status_code, api.status_code) == ((403,) * 3 if sees_project else (404,) * 3)
    assert without_project.status_code == 403  # platform-wide installs are the platform admins'
    assert not ServingRuntime.objects.filter(nim__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="runtime.create").exists()


def test_an_owner_may_use_only_ngc_connections_available_to_the_project(client, w):
    response = _api_install(client, w.owner, {"project": w.project.pk, "nim": "llama3-8b-instruct@1.0.0",
                                              "connection": w.other_ngc.pk})
    assert response.status_code == 400 and "connection" in response.json()["errors"]
    # A platform-wide NGC connection: only once the project opted into it.
    shared = connection_create(actor=w.admin, project=None, name="ngc", kind="ngc", secrets={"api_key": NGC_KEY})
    response = _api_install(client, w.owner, {"project": w.project.pk, "nim": "llama3-8b-instruct@1.0.0",
                                              "connection": shared.pk})
    assert response.status_code == 400 and "connection" in response.json()["errors"]
    assert not ServingRuntime.objects.filter(nim__isnull=False).exists()
    client.post(reverse("endpoints:connection-opt-in", kwargs={"pk": shared.pk}),
                {"project": w.project.pk, "action": "in"})
    response = _api_install(client, w.owner, {"project": w.project.pk, "nim": "llama3-8b-instruct@1.0.0",
                                              "connection": shared.pk, "cache_create": True})
    assert response.status_code == 201, response.content
    assert response.json()["nim"]["cache"]["create"] is True and MARKER not in response.content.decode()


def test_a_project_runtime_serves_that_project_only_and_is_hidden_from_others(client, w):
    response = _api_install(client, w.owner, {"project": w.project.pk, "nim": "llama3-8b-instruct@1.0.0",
                                              "connection": w.ngc.pk})
    assert response.status_code == 201, response.content
    runtime = ServingRuntime.objects.get(project=w.project)
    # The other project's Owner neither sees it nor deploys it.
    client.force_login(w.other_owner)
    listed = client.get(reverse("api-nim-runtime-list")).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert runtime.name not in json.dumps(rows)
    assert client.get(reverse("api-nim-runtime-detail", kwargs={"pk": runtime.pk})).status_code == 404
    deploy = client.post(reverse("api-nim-runtime-deploy", kwargs={"pk": runtime.pk}),
                         json.dumps({"project": w.other_project.pk, "name": "steal", "hardware_profile": w.a100.pk}),
                         content_type="application/json")
    assert deploy.status_code == 404
    assert not w.other_project.endpoints.exists()
    # The service refuses it as well, whatever path names the runtime.
    from endpoints.services.nim import entry_of, nim_version

    with pytest.raises(Exception, match="installed for project fraud only"):
        nim_version(actor=w.other_owner, project=w.other_project, runtime=runtime, entry=entry_of(runtime))


def test_the_project_page_offers_owners_the_nim_install_and_no_one_else(client, w):
    install = reverse("endpoints:project-nim-install", kwargs={"name": w.project.name})
    page = reverse("endpoints:project-detail", kwargs={"name": w.project.name})
    client.force_login(w.owner)
    assert install in client.get(page).content.decode()
    for user in (w.viewer, w.deployer):
        client.force_login(user)
        response = client.get(page)
        assert response.status_code == 200 and install not in response.content.decode()
