"""The cluster around KServe, as the sandbox plays it: Knative's ConfigMaps and what its webhook
refuses, nodes and the scheduler, KServe's GPU image choice, and canary traffic as KServe's
Knative reconciler really splits it. Users meet these through kubectl and the console; the
tests use kubectl where that is what an operator would use.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.kube import (
    KSERVE_VERSIONS_DIR,
    KUBECTL,
    REPO_ROOT,
    make_kubectl,
    release_sandbox,
    require,
)

NS = "default"
NODE_SELECTOR_REFUSAL = ('admission webhook "validation.webhook.serving.knative.dev" denied the request: '
                         "validation failed: must not set the field(s): spec.template.spec.nodeSelector")
GPU_TOLERATION = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _isvc(name: str, predictor: dict | None = None, *, mode: str | None = None, annotations: dict | None = None,
          **model) -> dict:
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris", **model}
    annotations = dict(annotations or {})
    if mode:
        annotations["serving.kserve.io/deploymentMode"] = mode
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NS, **({"annotations": annotations} if annotations else {})},
            "spec": {"predictor": {"model": model, **(predictor or {})}}}


def _conditions(obj: dict | None) -> dict[str, dict]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def _pods(sandbox, name: str) -> list[dict]:
    return sandbox.store.list("pods", NS, label_selector=f"serving.kserve.io/inferenceservice={name}")


def _events(sandbox, reason: str) -> list[dict]:
    return [e for e in sandbox.store.list("events", NS) if e.get("reason") == reason]


def _settle(sandbox, name: str, predicate, message: str):
    return sandbox.wait_for(lambda: (obj := sandbox.isvc(NS, name)) and predicate(obj) and obj, message=message)


# --- Knative's configuration ---------------------------------------------------------------


def test_knative_refuses_a_node_selector_until_an_admin_enables_it_with_kubectl_edit(sandbox, tmp_path):
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    listed = kubectl("get", "configmaps", "-n", "knative-serving").stdout
    assert "config-features" in listed and "config-defaults" in listed

    sandbox.store.create(_isvc("pinned", {"nodeSelector": {"kubernetes.io/hostname": "cpu-node-2"}}))
    refused = _settle(sandbox, "pinned", lambda o: "PredictorReady" in _conditions(o), "the Knative refusal")
    predictor_ready = _conditions(refused)["PredictorReady"]
    assert predictor_ready["status"] == "False" and predictor_ready["reason"] == "ReconcileFailed"
    assert predictor_ready["message"] == f"fails to reconcile predictor: {NODE_SELECTOR_REFUSAL}"
    assert _conditions(refused)["Ready"]["status"] == "False"
    assert not _pods(sandbox, "pinned"), "Knative created no revision, so there are no pods"
    assert any(NODE_SELECTOR_REFUSAL in e["message"] for e in _events(sandbox, "InternalError"))
    described = kubectl("describe", "isvc", "pinned").stdout
    assert "must not set the field(s): spec.template.spec.nodeSelector" in described

    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/kubernetes.podspec-nodeselector: disabled/"
                      "kubernetes.podspec-nodeselector: enabled/' \"$1\"\n")
    editor.chmod(0o755)
    kubectl("edit", "configmap", "config-features", "-n", "knative-serving", env={"KUBE_EDITOR": str(editor)})
    features = json.loads(kubectl("get", "configmap", "config-features", "-n", "knative-serving",
                                  "-o", "json").stdout)["data"]
    assert features["kubernetes.podspec-nodeselector"] == "enabled"

    ready = sandbox.wait_ready(NS, "pinned")
    assert [p["spec"]["nodeName"] for p in _pods(sandbox, "pinned")] == ["cpu-node-2"]
    assert ready["status"]["components"]["predictor"]["traffic"][0]["percent"] == 100


def test_tolerations_and_affinity_are_refused_together_in_knatives_sorted_wording(sandbox):
    sandbox.store.create(_isvc("gpu", {"tolerations": GPU_TOLERATION, "affinity": {"nodeAffinity": {}},
                                       "nodeSelector": {"nvidia.com/gpu.present": "true"}}))
    refused = _settle(sandbox, "gpu", lambda o: "PredictorReady" in _conditions(o), "the Knative refusal")
    assert _conditions(refused)["PredictorReady"]["message"].endswith(
        "must not set the field(s): spec.template.spec.affinity, spec.template.spec.nodeSelector, "
        "spec.template.spec.tolerations")


def test_the_same_predictor_in_standard_mode_is_not_knatives_business(sandbox):
    sandbox.store.create(_isvc("raw", {"nodeSelector": {"kubernetes.io/hostname": "cpu-node-3"}}, mode="Standard"))
    sandbox.wait_ready(NS, "raw")
    assert [p["spec"]["nodeName"] for p in _pods(sandbox, "raw")] == ["cpu-node-3"]


def test_a_timeout_above_knatives_maximum_is_refused_until_the_maximum_is_raised(sandbox):
    sandbox.store.create(_isvc("slow", {"timeout": 900}))
    refused = _settle(sandbox, "slow", lambda o: "PredictorReady" in _conditions(o), "the Knative refusal")
    assert _conditions(refused)["PredictorReady"]["message"].endswith(
        "validation failed: expected 0 <= 900 <= 600: spec.template.spec.timeoutSeconds")
    sandbox.store.patch("configmaps", "knative-serving", "config-defaults",
                        {"data": {"max-revision-timeout-seconds": "1200"}})
    sandbox.wait_ready(NS, "slow")


@pytest.mark.shared
def test_before_0_17_kserve_reports_the_knative_refusal_only_as_an_event():
    with release_sandbox("0.16.0") as sandbox:
        sandbox.store.create(_isvc("pinned", {"nodeSelector": {"kubernetes.io/hostname": "cpu-node-1"}}))
        sandbox.wait_for(lambda: _events(sandbox, "InternalError"), message="the InternalError event")
        event = _events(sandbox, "InternalError")[0]
        assert event["message"] == f"fails to reconcile predictor: {NODE_SELECTOR_REFUSAL}"
        assert "Ready" not in _conditions(sandbox.isvc(NS, "pinned"))


# --- nodes and the scheduler ---------------------------------------------------------------


def test_kubectl_sees_the_node_pool_with_its_allocatable_resources(sandbox, tmp_path):
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    table = kubectl("get", "nodes").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert sorted(line.split()[0] for line in table[1:]) == ["cpu-node-1", "cpu-node-2", "cpu-node-3",
                                                              "gpu-node-1", "gpu-node-2"]
    assert all(line.split()[1] == "Ready" for line in table[1:])
    gpu = json.loads(kubectl("get", "node", "gpu-node-1", "-o", "json").stdout)
    assert gpu["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert gpu["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def test_a_pod_asking_more_gpus_than_any_node_has_stays_pending_with_the_schedulers_reason(sandbox):
    sandbox.store.create(_isvc("huge", {"tolerations": GPU_TOLERATION}, mode="Standard",
                               resources={"limits": {"nvidia.com/gpu": "8"}}))
    expected = ("0/5 nodes are available: 5 Insufficient nvidia.com/gpu. preemption: 0/5 nodes are available: "
                "5 No preemption victims found for incoming pod.")
    pending = _settle(sandbox, "huge", lambda o: _conditions(o).get("PredictorReady", {}).get("message") == expected,
                      "the scheduler's reason")
    assert _conditions(pending)["Ready"]["status"] == "False"
    pod = _pods(sandbox, "huge")[0]
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    assert pod["status"]["conditions"] == [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": expected}]
    event = _events(sandbox, "FailedScheduling")[0]
    assert event["type"] == "Warning" and event["message"] == expected
    assert event["involvedObject"]["name"] == pod["metadata"]["name"]


def test_a_gpu_pod_without_the_toleration_is_kept_off_the_tainted_gpu_nodes(sandbox):
    sandbox.store.create(_isvc("untolerated", mode="Standard", resources={"limits": {"nvidia.com/gpu": "1"}}))
    expected = ("0/5 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}, "
                "3 Insufficient nvidia.com/gpu. preemption: 0/5 nodes are available: 2 Preemption is not "
                "helpful for scheduling, 3 No preemption victims found for incoming pod.")
    _settle(sandbox, "untolerated", lambda o: _conditions(o).get("Ready", {}).get("message") == expected,
            "the scheduler's reason")


def test_gpus_are_used_up_and_freed(sandbox):
    for name in ("first", "second", "third"):
        sandbox.store.create(_isvc(name, {"tolerations": GPU_TOLERATION}, mode="Standard",
                                   resources={"limits": {"nvidia.com/gpu": "4"}}))
    sandbox.wait_ready(NS, "first")
    sandbox.wait_ready(NS, "second")
    waiting = _settle(sandbox, "third", lambda o: _conditions(o).get("Ready", {}).get("status") == "False",
                      "the third to wait for GPUs")
    assert "Insufficient nvidia.com/gpu" in _conditions(waiting)["Ready"]["message"]
    nodes = {_pods(sandbox, n)[0]["spec"]["nodeName"] for n in ("first", "second")}
    assert nodes == {"gpu-node-1", "gpu-node-2"}
    sandbox.store.delete("inferenceservices", NS, "first")
    sandbox.wait_ready(NS, "third")


def test_an_admin_adding_a_node_makes_room(sandbox):
    sandbox.store.create(_isvc("amd", mode="Standard", resources={"limits": {"amd.com/gpu": "1"}}))
    _settle(sandbox, "amd", lambda o: "Insufficient amd.com/gpu" in _conditions(o).get("Ready", {}).get("message", ""),
            "no AMD node yet")
    node = sandbox.store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "mi300-node"}})
    sandbox.store.update_status("nodes", None, node["metadata"]["name"], {
        "allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110", "amd.com/gpu": "8"},
        "conditions": [{"type": "Ready", "status": "True"}]})
    sandbox.wait_ready(NS, "amd")


# --- KServe's GPU image choice ---------------------------------------------------------------


@pytest.mark.parametrize(("runtime", "model_format", "limits", "suffix"), [
    ("kserve-huggingfaceserver", "huggingface", {"nvidia.com/gpu": "1"}, "-gpu"),
    ("kserve-huggingfaceserver", "huggingface", {"nvidia.com/mig-1g.10gb": "1"}, "-gpu"),
    ("kserve-huggingfaceserver", "huggingface", {"amd.com/gpu": "1"}, ""),  # not a GPU to KServe
    ("kserve-torchserve", "pytorch", {"nvidia.com/gpu": "1"}, "-gpu"),
    ("kserve-sklearnserver", "sklearn", {"nvidia.com/gpu": "1"}, ""),  # no GPU build
])
def test_only_nvidia_gpus_and_mig_slices_get_the_gpu_image(sandbox, runtime, model_format, limits, suffix):
    base = sandbox.store.get("clusterservingruntimes", None, runtime)["spec"]["containers"][0]["image"]
    sandbox.store.create(_isvc("img", {"tolerations": GPU_TOLERATION}, mode="Standard", runtime=runtime,
                               modelFormat={"name": model_format}, resources={"limits": limits}))
    sandbox.wait_for(lambda: _pods(sandbox, "img"), message="the predictor pod")
    assert _pods(sandbox, "img")[0]["spec"]["containers"][0]["image"] == base + suffix


def test_vllm_without_an_nvidia_gpu_runs_its_cpu_build(sandbox):
    base = sandbox.store.get("clusterservingruntimes", None, "kserve-vllmserver")["spec"]["containers"][0]["image"]
    repository, tag = base.rsplit(":", 1)
    sandbox.store.create(_isvc("llm", mode="Standard", runtime="kserve-vllmserver", modelFormat={"name": "vLLM"},
                               storageUri="hf://org/model", resources={"limits": {"amd.com/gpu": "1"}}))
    sandbox.wait_for(lambda: _pods(sandbox, "llm"), message="the predictor pod")
    assert _pods(sandbox, "llm")[0]["spec"]["containers"][0]["image"] == f"{repository}-cpu:{tag}"


# --- canary traffic -----------------------------------------------------------------------------


def _traffic(obj: dict) -> list[tuple[str, int, str | None]]:
    return [(t["revisionName"], t["percent"], t.get("tag"))
            for t in obj["status"]["components"]["predictor"]["traffic"]]


def _update(sandbox, name: str, **predictor) -> None:
    current = sandbox.isvc(NS, name)
    current["spec"]["predictor"].update(predictor)
    current["spec"]["predictor"] = {k: v for k, v in current["spec"]["predictor"].items() if v is not None}
    sandbox.store.update(current, manager="console")


def test_a_first_deploy_takes_all_traffic_whatever_the_canary_percent_says(sandbox, tmp_path):
    sandbox.store.create(_isvc("fresh", {"canaryTrafficPercent": 10}))
    sandbox.wait_ready(NS, "fresh")
    # The first pass has no rolled-out revision to split against: 100 % to the only revision.
    # Once it is rolled out, KServe splits "latest" against it, which is the same revision:
    # two traffic entries, one revision taking all of it (a console must not show 10/90).
    split = _settle(sandbox, "fresh", lambda o: len(_traffic(o)) == 2, "KServe's self-split")
    assert _traffic(split) == [("fresh-predictor-00001", 10, None), ("fresh-predictor-00001", 90, "prev")]
    component = split["status"]["components"]["predictor"]
    assert component["latestRolledoutRevision"] == "fresh-predictor-00001"
    assert "previousRolledoutRevision" not in component
    assert len(_pods(sandbox, "fresh")) == 1


def test_a_canary_splits_against_the_rolled_out_revision_and_promotion_records_the_previous(sandbox, tmp_path):
    sandbox.store.create(_isvc("scorer"))
    sandbox.wait_ready(NS, "scorer")
    _update(sandbox, "scorer", canaryTrafficPercent=10,
            model={"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris-v2"})
    split = _settle(sandbox, "scorer", lambda o: len(o["status"]["components"]["predictor"].get("traffic", [])) == 2,
                    "the canary split")
    # Without enable-tag-routing only the previous revision carries a tag (KServe always tags it).
    assert _traffic(split) == [("scorer-predictor-00002", 10, None), ("scorer-predictor-00001", 90, "prev")]
    component = split["status"]["components"]["predictor"]
    assert component["latestRolledoutRevision"] == "scorer-predictor-00001"
    assert "previousRolledoutRevision" not in component
    columns = make_kubectl(sandbox.server, tmp_path / "home")("get", "isvc", "scorer").stdout.splitlines()
    header, row = columns[0].split(), columns[1].split()
    assert row[header.index("PREV")] == "90" and row[header.index("LATEST")] == "10"

    _update(sandbox, "scorer", canaryTrafficPercent=None)  # promote
    promoted = _settle(sandbox, "scorer", lambda o: len(o["status"]["components"]["predictor"]["traffic"]) == 1,
                       "the promotion")
    assert _traffic(promoted) == [("scorer-predictor-00002", 100, None)]
    component = promoted["status"]["components"]["predictor"]
    assert component["latestRolledoutRevision"] == "scorer-predictor-00002"
    assert component["previousRolledoutRevision"] == "scorer-predictor-00001"


def test_traffic_tags_for_the_latest_revision_need_the_tag_routing_annotation(sandbox):
    sandbox.store.create(_isvc("tagged", annotations={"serving.kserve.io/enable-tag-routing": "true"}))
    sandbox.wait_ready(NS, "tagged")
    _update(sandbox, "tagged", canaryTrafficPercent=20,
            model={"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris-v2"})
    split = _settle(sandbox, "tagged", lambda o: len(o["status"]["components"]["predictor"].get("traffic", [])) == 2,
                    "the canary split")
    traffic = split["status"]["components"]["predictor"]["traffic"]
    assert [(t["tag"], t["percent"]) for t in traffic] == [("latest", 20), ("prev", 80)]
    assert traffic[0]["url"] == "http://latest-tagged-predictor.default.example.com"


def test_a_zero_percent_canary_on_the_rolled_out_revision_rolls_back_to_the_previous_one(sandbox):
    sandbox.store.create(_isvc("rollback"))
    sandbox.wait_ready(NS, "rollback")
    _update(sandbox, "rollback", model={"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris-v2"})
    _settle(sandbox, "rollback", lambda o: o["status"]["components"]["predictor"].get("latestRolledoutRevision")
            == "rollback-predictor-00002", "v2 rolled out")
    _update(sandbox, "rollback", canaryTrafficPercent=0)
    rolled_back = _settle(sandbox, "rollback", lambda o: _traffic(o) == [
        ("rollback-predictor-00002", 0, None), ("rollback-predictor-00001", 100, "prev")], "the rollback")
    assert rolled_back["status"]["components"]["predictor"]["latestRolledoutRevision"] == "rollback-predictor-00001"


# --- the sandbox process -------------------------------------------------------------------------


def _run_sandbox(*args: str):
    return subprocess.Popen([sys.executable, "-m", "endpoints.sandbox.run", "--port", "0", *args],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.shared
def test_the_sandbox_process_plays_the_release_named_by_profile(tmp_path):
    folder = KSERVE_VERSIONS_DIR / "0.13.1"
    require(folder.is_dir(), f"KServe release data not found at {folder}")
    process = _run_sandbox("--profile", str(folder), "--kubeconfig-out", str(tmp_path / "kubeconfig"))
    try:
        line = process.stdout.readline()
        assert line.startswith("sandbox cluster (KServe 0.13, profile 0.13.1) listening on http://127.0.0.1:")
        kubectl = subprocess.run([str(KUBECTL), "--kubeconfig", str(tmp_path / "kubeconfig"), "get",
                                  "clusterservingruntimes", "-o", "name"], capture_output=True, text=True,
                                 env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=30, check=True)
        names = sorted(n.rsplit("/", 1)[1] for n in kubectl.stdout.split())
        assert "kserve-huggingfaceserver-multinode" not in names and len(names) == 10
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_sandbox_process_refuses_a_directory_that_is_not_a_profile(tmp_path):
    process = _run_sandbox("--profile", str(tmp_path))
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"{tmp_path}: not a release profile (neither profile.yaml nor runtimes/)" in stderr


def test_kubectl_create_configmap_sends_protobuf_and_is_understood(sandbox, tmp_path):
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("create", "configmap", "settings", "--from-literal=mode=fast", "--from-literal=level=3")
    stored = sandbox.store.get("configmaps", NS, "settings")
    assert stored["data"] == {"mode": "fast", "level": "3"}


def test_kubectl_get_pods_wide_shows_the_node_each_pod_runs_on(sandbox, tmp_path):
    sandbox.store.create(_isvc("placed", {"nodeSelector": {"kubernetes.io/hostname": "cpu-node-3"}}, mode="Standard"))
    sandbox.wait_ready(NS, "placed")
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    default = kubectl("get", "pods").stdout.splitlines()
    assert "NODE" not in default[0].split()
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    header, row = wide[0].split(), wide[1].split()
    assert row[header.index("NODE")] == "cpu-node-3"


def test_clients_read_the_clusters_kserve_crds_but_cannot_change_them(sandbox, tmp_path):
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    listed = kubectl("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/inferenceservices.serving.kserve.io" in listed
    crd = json.loads(kubectl("get", "crd", "inferenceservices.serving.kserve.io", "-o", "json").stdout)
    predictor = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["predictor"]
    assert "logger" in predictor["properties"] and "nodeSelector" in predictor["properties"]
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]} == {"Established": "True"}
    refused = kubectl("delete", "crd", "inferenceservices.serving.kserve.io", check=False)
    assert refused.returncode != 0 and "cannot change or watch them" in refused.stderr
    missing = kubectl("get", "crd", "inferencegraphs.serving.kserve.io", check=False)
    assert 'customresourcedefinitions.apiextensions.k8s.io "inferencegraphs.serving.kserve.io" not found' \
        in missing.stderr
