"""The NIM model cache (docs/nim.md): installing a NIM runtime can ask for the cache
PersistentVolumeClaim; the worker applies it before the runtime in each namespace that deploys
the NIM, the reconcile pass recreates it when it is deleted, and bad cache fields are refused with
the field. The sandbox serves claims like a cluster (``kubectl get pvc``: Bound) and an
InferenceService serving from ``pvc://<claim>/`` waits Pending with the scheduler's event until
the claim exists."""

from __future__ import annotations

import json

import pytest
import yaml
from django.urls import reverse

from audit.models import AuditEvent
from endpoints import nim
from endpoints.models import ServingRuntime
from endpoints.services.connections import connection_create, connection_opt_in
from endpoints.services.nim import catalog_entry, nim_deploy, nim_runtime_install
from endpoints.services.projects import project_create
from tests.conftest import shared_path
from tests.endpoints.endpoint_factories import ClusterFactory, HardwareProfileFactory
from tests.factories import UserFactory
from tests.fixtures.kube import make_kubectl

pytestmark = pytest.mark.django_db
NGC_KEY = "nvapi-CACHESECRET-sandbox-key"  # noqa: S105 - a test value


def _isvc(entry, namespace: str, claim: str) -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "embed", "namespace": namespace,
                         "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
            "spec": {"predictor": {"minReplicas": 1, "model": {
                "modelFormat": {"name": entry.model_format}, "runtime": entry.runtime_name, "protocolVersion": "v2",
                "storageUri": f"pvc://{claim}/",
                "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}}


def test_a_missing_claim_keeps_the_pod_pending_with_the_schedulers_event_until_kubectl_creates_it(sandbox, tmp_path):
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("create", "namespace", "nim")
    kubectl("create", "secret", "docker-registry", "ngc-secret", "-n", "nim", "--docker-server=nvcr.io",
            "--docker-username=$oauthtoken", "--docker-password=nvapi-test")
    entry = catalog_entry("nv-embedqa-e5-v5")
    runtime = nim.runtime_manifest(entry, name=entry.runtime_name, secret_name="nvidia-nim-secrets",
                                   pull_secret_name="ngc-secret", namespace="nim")
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([runtime, _isvc(entry, "nim", "nvidia-nim-pvc")]))

    def scheduling_events():
        out = kubectl("get", "events", "-n", "nim", "-o", "json").stdout
        return [e for e in json.loads(out)["items"] if e["reason"] == "FailedScheduling"]

    [event, *_] = sandbox.wait_for(scheduling_events, message="the scheduler's FailedScheduling event")
    assert 'persistentvolumeclaim "nvidia-nim-pvc" not found' in event["message"]
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "Pod"
    pods = sandbox.store.list("pods", "nim")
    assert pods and all(p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName") for p in pods)
    assert not any(c["type"] == "Ready" and c["status"] == "True"
                   for c in sandbox.isvc("nim", "embed")["status"]["conditions"])

    # NVIDIA's cache claim, as its layout writes it: bound at once, then the pod is scheduled.
    claim = next(d for d in yaml.safe_load_all(shared_path("kserve", "nim", "nvidia-nim-cache.yaml").read_text())
                 if d["kind"] == "PersistentVolumeClaim")
    kubectl("apply", "-n", "nim", "-f", "-", input=yaml.safe_dump(claim))
    sandbox.wait_ready("nim", "embed")
    table = kubectl("get", "pvc", "-n", "nim").stdout
    assert table.split("\n")[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES",
                                            "STORAGECLASS", "AGE"]
    row = table.split("\n")[1].split()
    assert row[:2] == ["nvidia-nim-pvc", "Bound"] and row[2].startswith("pvc-") and row[3:6] == [
        "300G", "RWX", "local-storage"]
    [pod, *_] = sandbox.store.list("pods", "nim")
    assert {"name": "kserve-pvc-source", "persistentVolumeClaim": {"claimName": "nvidia-nim-pvc",
                                                                   "readOnly": True}} in pod["spec"]["volumes"]


@pytest.fixture
def cache_world(sandbox):
    admin = UserFactory(username="cache-root", is_superuser=True, is_staff=True)
    cluster = ClusterFactory(name="gpu-lab", api_url=sandbox.url)
    project = project_create(actor=admin, name="llm", cluster=cluster, onboard=True)
    ngc = connection_create(actor=admin, project=None, name="ngc", kind="ngc", secrets={"api_key": NGC_KEY})
    connection_opt_in(actor=admin, connection=ngc, project=project)
    profile = HardwareProfileFactory(display_name="A100 80 GB", capacity=0)  # A100, GPU taint tolerated
    return admin, cluster, project, ngc, profile


def test_the_console_creates_the_cache_it_was_asked_for_and_the_reconcile_pass_recreates_it(
        sandbox, cache_world, tmp_path, django_capture_on_commit_callbacks):
    from endpoints.services.reconciler import reconcile_cluster

    admin, cluster, project, ngc, profile = cache_world
    runtime = nim_runtime_install(actor=admin, entry=catalog_entry("nv-embedqa-e5-v5"), connection=ngc,
                                  cache_name="nim-cache", cache_create=True, cache_size="120Gi",
                                  cache_storage_class="fast-rwx", cache_access_mode="ReadWriteMany")
    installed = AuditEvent.objects.get(action="runtime.create", target_id=str(runtime.pk))
    assert installed.details["new"]["cache"] == {"name": "nim-cache", "create": True, "size": "120Gi",
                                                 "storage_class": "fast-rwx", "access_mode": "ReadWriteMany"}
    with django_capture_on_commit_callbacks(execute=True):
        nim_deploy(actor=admin, project=project, runtime=runtime, name="embed", hardware_profile=profile,
                   accelerator_count=1, deployment_mode="Standard")
    sandbox.wait_ready("llm", "embed")
    claim = sandbox.store.get("persistentvolumeclaims", "llm", "nim-cache")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "fast-rwx"
    assert claim["spec"]["resources"]["requests"]["storage"] == "120Gi"
    assert claim["status"]["phase"] == "Bound"
    assert claim["metadata"]["labels"]["inference-console.io/nim-runtime"] == runtime.name
    assert any(m["manager"] == "inference-console" for m in claim["metadata"]["managedFields"])

    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("delete", "pvc", "nim-cache", "-n", "llm")
    assert sandbox.store.get("persistentvolumeclaims", "llm", "nim-cache") is None
    report = reconcile_cluster(cluster=cluster)
    assert report.get("nim_caches_recreated") == 1, report
    assert "Bound" in kubectl("get", "pvc", "nim-cache", "-n", "llm").stdout
    event = AuditEvent.objects.get(action="runtime.cache_recreated")
    assert event.details["claim"] == "nim-cache" and event.details["namespace"] == "llm"
    assert reconcile_cluster(cluster=cluster).get("nim_caches_recreated") is None  # it exists now: left alone
    assert all(NGC_KEY not in json.dumps(e.details, default=str) for e in AuditEvent.objects.all())


def test_a_runtime_installed_without_the_cache_never_creates_a_claim(sandbox, cache_world,
                                                                     django_capture_on_commit_callbacks):
    from endpoints.services.reconciler import reconcile_cluster

    admin, cluster, project, ngc, profile = cache_world
    runtime = nim_runtime_install(actor=admin, entry=catalog_entry("nv-embedqa-e5-v5"), connection=ngc)
    with django_capture_on_commit_callbacks(execute=True):
        nim_deploy(actor=admin, project=project, runtime=runtime, name="embed", hardware_profile=profile,
                   accelerator_count=1, deployment_mode="Standard")
    # The claim is the cluster admin's to provide: the pod waits for it, the console does not make it.
    sandbox.wait_for(lambda: [p for p in sandbox.store.list("pods", "llm")
                              if any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions") or [])],
                     message="the pod waiting for its claim")
    reconcile_cluster(cluster=cluster)
    assert sandbox.store.list("persistentvolumeclaims", "llm") == []


@pytest.mark.parametrize(("field", "value"), [("cache_size", "lots"), ("cache_size", "0Gi"),
                                              ("cache_storage_class", "Fast_RWX"),
                                              ("cache_access_mode", "ReadOnlyMany")])
def test_bad_cache_fields_are_refused_with_the_field_and_nothing_is_installed(client, field, value):
    from tests.endpoints.connection_factories import build

    w = build()
    ngc = connection_create(actor=w.admin, project=None, name="ngc", kind="ngc", secrets={"api_key": NGC_KEY})
    client.force_login(w.admin)
    body = {"nim": "llama3-8b-instruct@1.0.0", "connection": ngc.pk, "cache_create": True, field: value}
    response = client.post(reverse("api-nim-runtime-list"), json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not ServingRuntime.objects.filter(nim__isnull=False).exists()
    # The page says the same, on the field.
    page = client.post(reverse("endpoints:nim-install"), {**body, "cache_create": "on", "cache_name": "nvidia-nim-pvc"})
    assert page.status_code == 200 and field in page.context["form"].errors
    assert not ServingRuntime.objects.filter(nim__isnull=False).exists()
