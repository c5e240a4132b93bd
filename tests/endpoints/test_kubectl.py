"""The real kubectl (from the venv) against the fake API server loaded with the full KServe CRDs.

Proves the fake server is good enough for the tools an operator will point at a sandbox:
``kubectl apply --server-side``, ``get``, ``describe``, ``edit`` and ``delete`` (including the
watch kubectl uses to wait for finalizers), and that schema errors come back as 422 naming the field.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kube import KSERVE_EXAMPLES_DIR, require_shared_crds

pytestmark = pytest.mark.shared

NAMESPACE = "examples"


def example_files() -> list[Path]:
    require_shared_crds()
    files = sorted(KSERVE_EXAMPLES_DIR.glob("*.yaml"))
    assert files, f"no examples in {KSERVE_EXAMPLES_DIR}"
    return files


def _find_key(node: Any, key: str, path: str = "") -> str | None:
    """Dotted path of the first occurrence of ``key`` in a YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}" if path else k
            if k == key:
                return here
            found = _find_key(v, key, here)
            if found:
                return found
    return None


@pytest.fixture
def examples_namespace(kubectl) -> str:
    kubectl("create", "namespace", NAMESPACE)
    return NAMESPACE


def test_kubectl_server_side_applies_every_kserve_example_and_lists_them(kubectl, examples_namespace):
    files = example_files()
    # One kubectl run over the whole directory: one apply request per file, in file order.
    result = kubectl("apply", "--server-side", "-n", examples_namespace, "-f", str(KSERVE_EXAMPLES_DIR))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in files]
    for name in set(names):
        assert f"inferenceservice.serving.kserve.io/{name} serverside-applied" in result.stdout
    applies = kubectl.server.requests(verb="patch", resource="inferenceservices")
    assert [r.name for r in applies] == names and {r.status for r in applies} <= {200, 201}
    store = kubectl.server.store
    for name in set(names):
        stored = store.get("isvc", examples_namespace, name)
        assert stored["metadata"]["managedFields"][0]["manager"] == "kubectl"
    listing = kubectl("get", "isvc", "-A").stdout
    header = listing.splitlines()[0].split()
    assert header[:5] == ["NAMESPACE", "NAME", "URL", "READY", "PREV"]
    for name in set(names):
        assert any(line.split()[:2] == [examples_namespace, name] for line in listing.splitlines()[1:])
    as_json = json.loads(kubectl("get", "inferenceservices", "-n", examples_namespace, "-o", "json").stdout)
    assert {i["metadata"]["name"] for i in as_json["items"]} == set(names)
    failures = [r for r in kubectl.server.requests() if r.status >= 500]
    assert failures == []


def test_kubectl_describe_shows_spec_status_and_events(kubectl, examples_namespace):
    path = KSERVE_EXAMPLES_DIR / "sklearn-v1-iris.yaml"
    require_shared_crds()
    kubectl("apply", "--server-side", "-n", examples_namespace, "-f", str(path))
    store = kubectl.server.store
    obj = store.update_status("isvc", examples_namespace, "sklearn-iris", {
        "url": "http://sklearn-iris.examples.example.com",
        "conditions": [{"type": "Ready", "status": "False", "reason": "PredictorNotReady"}],
    })
    store.add_event(obj, "InferenceServiceNotReady", "PredictorReady=False: MinimumReplicasUnavailable",
                    type="Warning")
    out = kubectl("describe", "isvc", "sklearn-iris", "-n", examples_namespace).stdout
    assert "Name:         sklearn-iris" in out
    assert "Storage Uri:  gs://kfserving-examples/models/sklearn/1.0/model" in out
    assert "http://sklearn-iris.examples.example.com" in out
    assert "InferenceServiceNotReady" in out and "MinimumReplicasUnavailable" in out
    store.set_pod({"metadata": {"name": "sklearn-iris-predictor-0", "namespace": examples_namespace,
                                "labels": {"serving.kserve.io/inferenceservice": "sklearn-iris"}},
                   "spec": {"containers": [{"name": "kserve-container", "image": "kserve/sklearnserver"}]},
                   "status": {"phase": "Running"}})
    store.set_pod_log(examples_namespace, "sklearn-iris-predictor-0", "loading model\nmodel loaded\n")
    pods = kubectl("get", "pods", "-n", examples_namespace, "-l", "serving.kserve.io/inferenceservice=sklearn-iris").stdout
    assert "sklearn-iris-predictor-0" in pods and "Running" in pods
    logs = kubectl("logs", "sklearn-iris-predictor-0", "-n", examples_namespace, "--tail=1").stdout
    assert logs == "model loaded\n"
    events_query = kubectl.server.requests(resource="events")[-1].query["fieldSelector"]
    assert "involvedObject.name=sklearn-iris" in events_query
    row = kubectl("get", "isvc", "sklearn-iris", "-n", examples_namespace, "--no-headers").stdout.split()
    assert row[:3] == ["sklearn-iris", "http://sklearn-iris.examples.example.com", "False"]


def test_kubectl_edit_takes_ownership_and_a_later_console_apply_conflicts(kubectl, examples_namespace):
    require_shared_crds()
    kubectl("apply", "--server-side", "-n", examples_namespace, "-f",
            str(KSERVE_EXAMPLES_DIR / "sklearn-v1-iris.yaml"), "--field-manager", "inference-console")
    kubectl("edit", "isvc", "sklearn-iris", "-n", examples_namespace,
            env={"EDITOR": "sed -i s#gs://kfserving-examples#s3://mirror#"})
    obj = kubectl.server.store.get("isvc", examples_namespace, "sklearn-iris")
    assert obj["spec"]["predictor"]["sklearn"]["storageUri"].startswith("s3://mirror")
    assert {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]} == {("kubectl-edit", "Update")}
    result = kubectl("apply", "--server-side", "-n", examples_namespace, "-f",
                     str(KSERVE_EXAMPLES_DIR / "sklearn-v1-iris.yaml"), "--field-manager", "inference-console",
                     check=False)
    assert result.returncode != 0
    assert 'conflict with "kubectl-edit"' in result.stderr and ".spec.predictor.sklearn.storageUri" in result.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-n", examples_namespace, "-f",
            str(KSERVE_EXAMPLES_DIR / "sklearn-v1-iris.yaml"), "--field-manager", "inference-console")


def test_kubectl_delete_removes_objects_and_waits_for_finalizers(kubectl, examples_namespace):
    require_shared_crds()
    for name in ("plain", "guarded"):
        kubectl("apply", "--server-side", "-n", examples_namespace, "-f", "-", input=yaml.safe_dump({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}},
        }))
    store = kubectl.server.store
    out = kubectl("delete", "isvc", "plain", "-n", examples_namespace).stdout
    assert 'inferenceservice.serving.kserve.io "plain" deleted' in out
    assert store.get("isvc", examples_namespace, "plain") is None

    store.patch("isvc", examples_namespace, "guarded", {"metadata": {"finalizers": ["inferenceservice.finalizers"]}})
    kubectl("delete", "isvc", "guarded", "-n", examples_namespace, "--wait=false")
    assert store.get("isvc", examples_namespace, "guarded")["metadata"]["deletionTimestamp"]

    def controller_finishes_cleanup() -> None:
        time.sleep(0.5)
        store.remove_finalizer("isvc", examples_namespace, "guarded", "inferenceservice.finalizers")

    thread = threading.Thread(target=controller_finishes_cleanup)
    thread.start()
    kubectl("delete", "isvc", "guarded", "-n", examples_namespace, "--timeout=10s")
    thread.join()
    assert store.get("isvc", examples_namespace, "guarded") is None
    assert kubectl.server.requests(verb="watch", resource="inferenceservices")


def _apply_broken_examples(kubectl, directory: Path, count: int, expected: list[str]) -> str:
    """Apply every file in ``directory`` in one kubectl run; each must be refused with a 422."""
    result = kubectl("apply", "--server-side", "-n", NAMESPACE, "-f", str(directory), check=False)
    assert result.returncode != 0
    applies = kubectl.server.requests(verb="patch", resource="inferenceservices")
    assert len(applies) == count and all(r.status == 422 for r in applies), [r.status for r in applies]
    assert kubectl.server.store.list("isvc", NAMESPACE) == []
    for message in expected:
        assert message in result.stderr, (message, result.stderr)
    return result.stderr


def test_kubectl_typo_in_any_example_gets_422_naming_the_field(kubectl, examples_namespace, tmp_path):
    expected = []
    for path in example_files():
        field = _find_key(yaml.safe_load(path.read_text()), "storageUri")
        assert field, f"{path.name} has no storageUri"
        (tmp_path / path.name).write_text(path.read_text().replace("storageUri", "storageURI"))
        expected.append(f"{field.rsplit('.', 1)[0]}.storageURI: field not declared in schema")
    _apply_broken_examples(kubectl, tmp_path, len(expected), expected)


def test_kubectl_wrong_type_in_any_example_gets_422_naming_the_field(kubectl, examples_namespace, tmp_path):
    files = example_files()
    for path in files:
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["predictor"]["minReplicas"] = "two"
        (tmp_path / path.name).write_text(yaml.safe_dump(doc))
    stderr = _apply_broken_examples(kubectl, tmp_path, len(files), ["spec.predictor.minReplicas: Invalid value: \"string\": "
                                                       "spec.predictor.minReplicas in body must be of type integer"])
    assert stderr.count("spec.predictor.minReplicas in body must be of type integer") >= len(files)


def test_kubectl_discovers_only_through_paths_the_fake_server_serves(kubectl, examples_namespace):
    require_shared_crds()
    kubectl("apply", "--server-side", "-n", examples_namespace, "-f",
            str(KSERVE_EXAMPLES_DIR / "sklearn-v1-iris.yaml"))
    kubectl("get", "isvc", "-n", examples_namespace)
    nonresource = {(r.path, r.status) for r in kubectl.server.requests(resource="")}
    assert ("/api", 200) in nonresource and ("/apis", 200) in nonresource
    assert ("/openapi/v3", 200) in nonresource
    assert ("/openapi/v3/apis/serving.kserve.io/v1beta1", 200) in nonresource
    assert all(status == 200 for _, status in nonresource), nonresource
    patch = kubectl.server.requests(verb="patch")[-1]
    assert patch.query["fieldValidation"] == "Strict" and patch.query["fieldManager"] == "kubectl"


def test_kubectl_typed_create_commands_for_core_kinds_work(kubectl, examples_namespace):
    # These send protobuf bodies; the server decodes Namespace, Secret and ServiceAccount.
    kubectl("create", "secret", "generic", "hf-token", "-n", examples_namespace, "--from-literal=HF_TOKEN=abc")
    kubectl("create", "serviceaccount", "hf-sa", "-n", examples_namespace)
    store = kubectl.server.store
    assert store.get("secrets", examples_namespace, "hf-token")["data"] == {"HF_TOKEN": "YWJj"}
    assert store.get("serviceaccounts", examples_namespace, "hf-sa")["metadata"]["uid"]
    assert store.get("namespaces", None, examples_namespace)["status"]["phase"] == "Active"
    listing = kubectl("get", "secrets,serviceaccounts", "-n", examples_namespace).stdout
    assert "secret/hf-token" in listing and "serviceaccount/hf-sa" in listing
    kubectl("delete", "namespace", examples_namespace)
    assert store.get("secrets", examples_namespace, "hf-token") is None
    assert store.get("namespaces", None, examples_namespace) is None
