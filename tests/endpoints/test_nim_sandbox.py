"""A NIM on the sandbox cluster, over real HTTP: refused before apply on a Knative cluster without
the two flags NIMs need, Ready after an admin's ``kubectl patch`` of ``config-features``; and the
sandbox waits on an image pull without a pull secret, as a cluster does."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from endpoints import nim
from endpoints.services.capabilities import cluster_discover
from endpoints.services.connections import connection_create, connection_opt_in
from endpoints.services.nim import catalog_entry, nim_deploy, nim_runtime_install
from endpoints.services.projects import project_create
from tests.conftest import shared_path
from tests.endpoints.endpoint_factories import ClusterFactory, HardwareProfileFactory
from tests.factories import UserFactory
from tests.fixtures.kube import make_kubectl

pytestmark = pytest.mark.django_db
NGC_KEY = "nvapi-SECRET-abc123-sandbox-ngc-key"  # noqa: S105 - a test value


@pytest.fixture
def nim_world(sandbox):
    admin = UserFactory(username="nim-root", is_superuser=True, is_staff=True)
    cluster = ClusterFactory(name="gpu-lab", api_url=sandbox.url)
    project = project_create(actor=admin, name="llm", cluster=cluster, onboard=True)
    ngc = connection_create(actor=admin, project=None, name="ngc", kind="ngc", secrets={"api_key": NGC_KEY})
    connection_opt_in(actor=admin, connection=ngc, project=project)
    runtime = nim_runtime_install(actor=admin, entry=catalog_entry("llama3-8b-instruct"), connection=ngc,
                                  cache_create=True)
    # The sandbox's GPU nodes: NVIDIA-A100-SXM4-80GB, tainted nvidia.com/gpu=present:NoSchedule.
    profile = HardwareProfileFactory(display_name="A100 80 GB", capacity=0)  # A100, GPU taint tolerated
    return admin, cluster, project, runtime, profile


def test_a_nim_on_knative_without_the_flags_is_refused_before_apply_and_deploys_after_kubectl_patch(
        sandbox, nim_world, tmp_path, django_capture_on_commit_callbacks):
    admin, cluster, project, runtime, profile = nim_world
    cluster_discover(cluster=cluster)
    requests_before = len(sandbox.server.requests())
    with pytest.raises(ValidationError) as refused:
        nim_deploy(actor=admin, project=project, runtime=runtime, name="chat", hardware_profile=profile,
                   accelerator_count=1, deployment_mode="Knative")
    [message, *_] = refused.value.message_dict["deployment_mode"]
    assert "kubernetes.podspec-nodeselector" in message and "choose Standard mode" in message
    assert not [r for r in sandbox.server.requests()[requests_before:] if r.verb == "patch"]  # nothing applied

    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("patch", "configmap", "config-features", "-n", "knative-serving", "--type", "merge", "-p", json.dumps(
        {"data": {"kubernetes.podspec-nodeselector": "enabled", "kubernetes.podspec-tolerations": "enabled",
                  "kubernetes.podspec-volumes-emptydir": "enabled"}}))
    cluster_discover(cluster=cluster)
    with django_capture_on_commit_callbacks(execute=True):
        nim_deploy(actor=admin, project=project, runtime=runtime, name="chat", hardware_profile=profile,
                   accelerator_count=1, deployment_mode="Knative")
    live = sandbox.wait_ready("llm", "chat")
    model = live["spec"]["predictor"]["model"]
    assert model["runtime"] == "nvidia-nim-llama3-8b-instruct-1.0.0"
    assert model["storageUri"] == "pvc://nvidia-nim-pvc/"
    assert live["status"]["servingRuntimeName"] == "nvidia-nim-llama3-8b-instruct-1.0.0"
    applied = sandbox.store.get("servingruntimes", "llm", "nvidia-nim-llama3-8b-instruct-1.0.0")
    assert applied["spec"]["imagePullSecrets"] == [{"name": "ic-shared-ngc-pull"}]
    pull = sandbox.store.get("secrets", "llm", "ic-shared-ngc-pull")
    auths = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    assert auths["nvcr.io"]["username"] == "$oauthtoken" and auths["nvcr.io"]["password"] == NGC_KEY
    key = sandbox.store.get("secrets", "llm", "ic-shared-ngc")
    assert base64.b64decode(key["data"]["NGC_API_KEY"]).decode() == NGC_KEY
    pods = [p for p in sandbox.store.list("pods", "llm") if p["metadata"]["labels"].get("serving.kserve.io/inferenceservice") == "chat"]
    assert pods and all(p["metadata"]["labels"]["sandbox.inference-console.io/simulated"] == "no-gpu" for p in pods)
    for event in AuditEvent.objects.all():
        assert NGC_KEY not in json.dumps(event.details, default=str)


def test_without_a_pull_secret_the_pod_waits_with_an_image_pull_error_until_the_secret_exists(sandbox, tmp_path):
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("create", "namespace", "nim")
    entry = catalog_entry("nv-embedqa-e5-v5")
    runtime = nim.runtime_manifest(entry, name=entry.runtime_name, secret_name="nvidia-nim-secrets",
                                   pull_secret_name="ngc-secret", namespace="nim")
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "embed", "namespace": "nim",
                         "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
            "spec": {"predictor": {"minReplicas": 1, "model": {
                "modelFormat": {"name": entry.model_format}, "runtime": entry.runtime_name, "protocolVersion": "v2",
                "storageUri": "pvc://nvidia-nim-pvc/",
                "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}}
    cache = next(d for d in yaml.safe_load_all(shared_path("kserve", "nim", "nvidia-nim-cache.yaml").read_text())
                 if d["kind"] == "PersistentVolumeClaim")  # NVIDIA's cache claim (the scheduler wants it first)
    kubectl("apply", "-n", "nim", "-f", "-", input=yaml.safe_dump_all([cache, runtime, isvc]))

    def pull_events():
        out = kubectl("get", "events", "-n", "nim", "-o", "json").stdout
        return [e for e in json.loads(out)["items"] if e["reason"] in ("Failed", "BackOff")
                and "nvcr.io/nim/nvidia/nv-embedqa-e5-v5:1.0.0" in e["message"]]

    events = sandbox.wait_for(pull_events, message="the kubelet's image pull error")
    assert any("401 Unauthorized" in e["message"] for e in events)
    assert any(e["reason"] == "BackOff" for e in events)
    pods = sandbox.store.list("pods", "nim")
    assert pods and all(s["state"]["waiting"]["reason"] == "ImagePullBackOff"
                        for p in pods for s in p["status"]["containerStatuses"] if s["name"] == "kserve-container")
    assert not any(c["type"] == "Ready" and c["status"] == "True" for c in sandbox.isvc("nim", "embed")["status"]
                   ["conditions"])
    # NVIDIA's setup: the pull secret for nvcr.io with the $oauthtoken user.
    kubectl("create", "secret", "docker-registry", "ngc-secret", "-n", "nim", "--docker-server=nvcr.io",
            "--docker-username=$oauthtoken", "--docker-password=nvapi-test")
    sandbox.wait_ready("nim", "embed")


def test_a_nim_runtime_edited_with_kubectl_is_repaired_by_the_reconcile_pass_and_audited(
        sandbox, nim_world, tmp_path, django_capture_on_commit_callbacks):
    from endpoints.services.reconciler import reconcile_cluster

    admin, cluster, project, runtime, profile = nim_world
    with django_capture_on_commit_callbacks(execute=True):
        nim_deploy(actor=admin, project=project, runtime=runtime, name="chat", hardware_profile=profile,
                   accelerator_count=1, deployment_mode="Standard")
    sandbox.wait_ready("llm", "chat")
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("patch", "servingruntime", runtime.name, "-n", "llm", "--type", "json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/containers/0/image", "value": "registry.example.com/other:latest"}]))
    report = reconcile_cluster(cluster=cluster)
    assert report.get("nim_runtimes_repaired") == 1, report
    live = sandbox.store.get("servingruntimes", "llm", runtime.name)
    assert live["spec"]["containers"][0]["image"] == "nvcr.io/nim/meta/llama3-8b-instruct:1.0.0"
    event = AuditEvent.objects.get(action="runtime.drift_corrected")
    assert event.details["changed"] == ["containers"] and event.details["namespace"] == "llm"
    assert reconcile_cluster(cluster=cluster).get("nim_runtimes_repaired") is None  # nothing left to repair


def test_an_admin_imports_the_nim_runtimes_a_cluster_holds_into_the_catalog(sandbox, nim_world, tmp_path):
    from endpoints.models import NimCatalogEntry
    from endpoints.services.nim import catalog_entry as lookup
    from endpoints.services.nim import nim_entries_import
    from tests.conftest import shared_path

    admin, cluster, _project, _runtime, _profile = nim_world
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    theirs = shared_path("kserve", "nim", "runtimes", "llama3-8b-instruct-1.0.0.yaml").read_text()
    newer = (theirs.replace("nvidia-nim-llama3-8b-instruct-1.0.0", "nvidia-nim-llama3-8b-instruct-1.0.3")
             .replace("llama3-8b-instruct:1.0.0", "llama3-8b-instruct:1.0.3").replace('version: "1.0.0"',
                                                                                      'version: "1.0.3"'))
    kubectl("apply", "-f", "-", input=theirs + "\n---\n" + newer)
    created = nim_entries_import(actor=admin, cluster=cluster)
    assert [(row.key, row.version, row.source) for row in created] == [("llama3-8b-instruct", "1.0.3", "imported")]
    entry = lookup("llama3-8b-instruct", "1.0.3")
    assert entry.image == "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3"
    assert (entry.cpu_limit, entry.memory_limit, entry.shm_size) == ("12", "32Gi", "16Gi")
    event = AuditEvent.objects.get(action="nim.entry_create")
    assert "ClusterServingRuntime nvidia-nim-llama3-8b-instruct-1.0.3 on cluster gpu-lab" in event.details[
        "imported_from"]
    assert nim_entries_import(actor=admin, cluster=cluster) == []  # nothing new the second time
    assert NimCatalogEntry.objects.count() == 1
