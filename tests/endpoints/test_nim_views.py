"""NIM pages and API: an admin adds an NGC connection and installs a NIM; only GPU profiles that
fit the NIM are offered and the API refuses one that does not, with the reason; "How to call it"
is the NIM's OpenAI-style call; and, from a Viewer's and an outsider's side, the NGC key appears
in no response, plan, diff, audit event, export or log line."""

from __future__ import annotations

import json
import logging

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from endpoints.models import HardwareProfile, ServingRuntime, StorageConnection
from tests.endpoints.connection_factories import build

pytestmark = pytest.mark.django_db
NGC_KEY = "nvapi-NGCSECRET-9f8e7d-key"  # noqa: S105 - a test value
NEW_NGC_KEY = "nvapi-NGCSECRET-rotated-key"  # noqa: S105 - a test value
MARKER = "NGCSECRET"
PLATFORM = "platform"  # the connection form's choice for a platform-wide connection


def assert_no_key(body, where: str) -> None:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    assert MARKER not in text, f"the NGC key appears in the {where}"


@pytest.fixture
def w(client):
    w = build()
    w.a100 = HardwareProfile.objects.create(
        name="a100-80", display_name="A100 80 GB", accelerator_resource="nvidia.com/gpu",
        accelerator_product="NVIDIA-A100-SXM4-80GB", node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        max_accelerators_per_replica=4, max_cpu="16", max_memory="64Gi")
    w.t4 = HardwareProfile.objects.create(
        name="t4", display_name="T4 16 GB", accelerator_resource="nvidia.com/gpu", accelerator_product="Tesla-T4",
        max_accelerators_per_replica=4, max_cpu="16", max_memory="64Gi")
    w.cpu = HardwareProfile.objects.create(name="cpu", display_name="CPU only", max_cpu="16", max_memory="64Gi")
    return w


def _admin_installs(client, w, nim="llama3-8b-instruct@1.0.0") -> ServingRuntime:
    client.force_login(w.admin)
    response = client.post(reverse("endpoints:connection-create") + "?kind=ngc",
                           {"project": PLATFORM, "name": "ngc", "display_name": "NGC", "description": "", "secret_api_key": NGC_KEY,
                            "secret_hf_token": ""}, follow=True)
    assert response.status_code == 200
    connection = StorageConnection.objects.get(name="ngc", kind="ngc", project__isnull=True)
    response = client.post(reverse("endpoints:nim-install"), {"nim": nim, "connection": connection.pk,
                                                               "cache_name": "nvidia-nim-pvc"})
    assert response.status_code == 302, response.content.decode()[:2000]
    client.force_login(w.owner)
    response = client.post(reverse("endpoints:connection-opt-in", kwargs={"pk": connection.pk}),
                           {"project": w.project.pk, "action": "in"})
    assert response.status_code in (200, 302)
    return ServingRuntime.objects.get(nim__isnull=False, name__startswith=f"nvidia-nim-{nim.split('@')[0]}")


def _deploy_api(client, user, runtime, w, profile, count=1, name="chat"):
    client.force_login(user)
    return client.post(reverse("api-nim-runtime-deploy", kwargs={"pk": runtime.pk}),
                       json.dumps({"project": w.project.pk, "name": name, "hardware_profile": profile.pk,
                                   "accelerator_count": count}), content_type="application/json")


def test_the_deploy_page_offers_only_profiles_that_fit_the_nim(client, w):
    runtime = _admin_installs(client, w)
    client.force_login(w.deployer)
    page = client.get(reverse("endpoints:nim-deploy") + f"?runtime={runtime.pk}&project={w.project.pk}")
    assert page.status_code == 200
    body = page.content.decode()
    assert f'value="{w.a100.pk}"' in body
    assert f'value="{w.t4.pk}"' not in body and f'value="{w.cpu.pk}"' not in body
    assert "1 × GPU with ≥ 24 GiB" in body


def test_the_api_refuses_a_profile_that_fits_no_shape_with_the_reason_and_stores_nothing(client, w):
    runtime = _admin_installs(client, w, nim="llama3-70b-instruct@1.0.0")
    response = _deploy_api(client, w.deployer, runtime, w, w.t4, count=4)
    assert response.status_code == 400
    [message] = response.json()["errors"]["hardware_profile"]
    assert "fits none of NIM llama3-70b-instruct 1.0.0's GPU shapes" in message
    assert "Tesla-T4 has 16 GiB" in message
    response = _deploy_api(client, w.deployer, runtime, w, w.a100, count=3)
    assert response.status_code == 400
    assert "needs 4 GPUs, not 3" in response.json()["errors"]["hardware_profile"][0]
    assert not w.project.endpoints.exists()
    response = _deploy_api(client, w.deployer, runtime, w, w.a100, count=4)
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "chat"


def test_a_viewer_and_an_outsider_cannot_deploy_a_nim(client, w):
    runtime = _admin_installs(client, w)
    assert _deploy_api(client, w.viewer, runtime, w, w.a100).status_code == 400  # the project is not theirs to use
    assert _deploy_api(client, w.outsider, runtime, w, w.a100).status_code == 400
    assert not w.project.endpoints.exists()
    client.force_login(w.deployer)
    response = client.post(reverse("api-nim-runtime-list"), json.dumps({"nim": "nv-embedqa-e5-v5@1.0.0",
                                                                         "connection": 1}),
                           content_type="application/json")
    assert response.status_code == 403


def test_deploying_from_the_page_goes_to_the_plan_and_how_to_call_it_is_the_nims_openai_call(client, w,
                                                                                              django_capture_on_commit_callbacks):
    runtime = _admin_installs(client, w)
    client.force_login(w.deployer)
    response = client.post(reverse("endpoints:nim-deploy"), {
        "project": w.project.pk, "runtime": runtime.pk, "name": "chat", "hardware_profile": w.a100.pk,
        "accelerator_count": 1, "deployment_mode": "Standard", "min_replicas": 1, "max_replicas": 1})
    assert response.status_code == 302 and "/plan/" in response["Location"]
    plan = client.get(response["Location"])
    assert plan.status_code == 200
    assert "nvidia-nim-llama3-8b-instruct-1.0.0" in plan.content.decode()
    assert_no_key(plan.content, "plan page")
    with django_capture_on_commit_callbacks(execute=False):
        confirmed = client.post(response["Location"], follow=True)
    assert confirmed.status_code == 200
    endpoint = w.project.endpoints.get(name="chat")
    page = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": w.project.name, "name": "chat"}))
    body = page.content.decode()
    assert "/v1/chat/completions" in body and "meta/llama3-8b-instruct" in body
    assert endpoint.runtime == runtime


def test_how_to_call_it_follows_the_nims_api_for_embeddings_and_ranking(client, w):
    from endpoints.calling import how_to_call

    for nim, route, field in (("nv-embedqa-e5-v5@1.0.0", "/v1/embeddings", '"input_type": "query"'),
                              ("nv-rerankqa-mistral-4b-v3@1.0.0", "/v1/ranking", '"passages"')):
        runtime = _admin_installs(client, w, nim=nim) if not ServingRuntime.objects.filter(
            nim__isnull=False, name__startswith=f"nvidia-nim-{nim.split('@')[0]}").exists() else None
        response = _deploy_api(client, w.deployer, runtime, w, w.a100, name=nim.split("-")[1][:10])
        assert response.status_code == 201, response.content
        endpoint = w.project.endpoints.get(pk=response.json()["id"])
        call = how_to_call(endpoint, None)
        assert call["method_path"] == f"POST {route}" and field in call["curl"]


def test_the_ngc_key_appears_in_no_response_plan_diff_audit_event_export_or_log(client, w, caplog):
    with caplog.at_level(logging.DEBUG):
        runtime = _admin_installs(client, w)
        bodies = []
        response = _deploy_api(client, w.deployer, runtime, w, w.a100)
        assert response.status_code == 201
        bodies.append(response.content)
        endpoint = w.project.endpoints.get(name="chat")
        connection = StorageConnection.objects.get(name="ngc")
        client.force_login(w.admin)
        bodies.append(client.post(reverse("endpoints:connection-rotate", kwargs={"pk": connection.pk}),
                                  {"secret_api_key": NEW_NGC_KEY, "secret_hf_token": ""}, follow=True).content)
        ep = {"project": w.project.name, "name": endpoint.name}
        api_plan = json.dumps({"accelerator_count": 2})
        for user in (w.viewer, w.outsider, w.deployer, w.admin):
            client.force_login(user)
            for path in (reverse("endpoints:endpoint-list"), reverse("endpoints:endpoint-detail", kwargs=ep),
                         reverse("endpoints:endpoint-configuration", kwargs=ep),
                         reverse("endpoints:endpoint-manifest", kwargs=ep),
                         reverse("endpoints:endpoint-revisions", kwargs=ep),
                         reverse("endpoints:connection-list"),
                         reverse("endpoints:connection-detail", kwargs={"pk": connection.pk}),
                         reverse("endpoints:nim-deploy") + f"?runtime={runtime.pk}",
                         reverse("api-nim-runtime-list"),
                         reverse("endpoint-detail", kwargs={"pk": endpoint.pk}),
                         reverse("endpoint-revisions", kwargs={"pk": endpoint.pk}),
                         reverse("api-connection-detail", kwargs={"pk": connection.pk})):
                bodies.append(client.get(path).content)
            plan = client.post(reverse("endpoint-plan", kwargs={"pk": endpoint.pk}), api_plan,
                               content_type="application/json")
            bodies.append(plan.content)
        client.force_login(w.admin)
        for path in (reverse("endpoints:nim-catalog"), reverse("endpoints:runtime-list")):
            bodies.append(client.get(path).content)
        client.force_login(w.auditor)
        for fmt in ("csv", "jsonl"):
            response = client.get(reverse("audit:event-export", kwargs={"fmt": fmt}))
            assert response.status_code == 200
            export = b"".join(response.streaming_content)
            assert b"runtime.create" in export and b"connection.rotate" in export
            bodies.append(export)
        bodies.append(client.get(reverse("audit:event-list")).content)
    for body in bodies:
        assert_no_key(body, "response")
    for event in AuditEvent.objects.all():
        assert_no_key(json.dumps(event.details, default=str) + event.target_repr, f"audit event {event.action}")
    for revision in endpoint.revisions.all():
        assert_no_key(json.dumps(revision.spec) + json.dumps(revision.manifest), "revision")
    assert_no_key(caplog.text, "log output")


def test_an_admin_adds_a_nim_version_to_the_catalog_and_a_bad_entry_is_refused_with_the_field(client, w):
    from endpoints.models import NimCatalogEntry
    from endpoints.nim import builtin_entries

    entry = next(e for e in builtin_entries() if e.key == "llama3-8b-instruct").to_json()
    client.force_login(w.admin)
    bad = {**entry, "version": "1.0.3", "api": "telepathy"}
    response = client.post(reverse("endpoints:nim-entry-create"), {"data": json.dumps(bad)})
    assert response.status_code in (200, 400) and "api: The API is one of" in response.content.decode()
    duplicate = client.post(reverse("endpoints:nim-entry-create"), {"data": json.dumps(entry)})
    assert "has NIM llama3-8b-instruct 1.0.0 already" in duplicate.content.decode()
    assert not NimCatalogEntry.objects.exists()
    newer = {**entry, "version": "1.0.3", "image": "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3"}
    response = client.post(reverse("endpoints:nim-entry-create"), {"data": json.dumps(newer)}, follow=True)
    assert "NIM llama3-8b-instruct 1.0.3 added to the catalog." in response.content.decode()
    assert "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3" in response.content.decode()
    event = AuditEvent.objects.get(action="nim.entry_create")
    assert event.details["new"]["version"] == "1.0.3" and event.actor_name == w.admin.username
    client.force_login(w.owner)
    assert client.post(reverse("endpoints:nim-entry-create"), {"data": json.dumps(newer)}).status_code == 403
