"""The sandbox's built-in KServe CRDs (``endpoints/sandbox/crdgen.py``) against KServe 0.20's.

The built-in server (no ``--crd`` files) must accept what the real CRDs accept, refuse unknown
fields the way the real server does, and carry the same list/map semantics for server-side apply.
Tests marked ``shared`` compare with the reference CRDs and examples in ``../shared``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from endpoints.sandbox import FakeApiServer, crdgen
from endpoints.sandbox.schema import load_yaml_documents
from tests.fixtures.kube import SHARED_DIR, make_kubectl, require

REFERENCE_DIR = SHARED_DIR / "kserve" / "versions" / "0.20.0" / "crds"
EXAMPLES_DIR = SHARED_DIR / "kserve" / "examples"

# Compared per node: structure and the markers server-side apply and validation act on.
COMPARED_KEYS = ("type", "x-kubernetes-int-or-string", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
                 "x-kubernetes-map-type", "x-kubernetes-preserve-unknown-fields")

# Differences that remain, by path (an empty allow-list: the compared subtrees agree exactly).
# Outside the compared subtrees, known differences are listed in docs/fake-apiserver.md
# (spec.canary[].predictor keeps KServe's relaxed `required`s; integer formats are not emitted).
ALLOWED_DIFFERENCES: set[tuple[str, str]] = set()


def reference_crd(plural: str) -> dict[str, Any]:
    path = REFERENCE_DIR / f"{plural}.yaml"
    require(path.is_file(), f"KServe 0.20 reference CRD not found: {path}")
    return load_yaml_documents(path)[0]


def root_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def generated(plural: str) -> dict[str, Any]:
    return next(c for c in crdgen.builtin_crds() if c["spec"]["names"]["plural"] == plural)


def isvc(name: str = "iris", **predictor: Any) -> dict[str, Any]:
    spec = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}, **predictor}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"predictor": spec}}


def explain_fields(output: str) -> set[str]:
    """Field names of the FIELDS section of ``kubectl explain`` output."""
    _, _, fields = output.partition("FIELDS:")
    return set(re.findall(r"^  ([A-Za-z0-9_]+)\t?\s*<", fields, flags=re.MULTILINE))


@pytest.fixture
def kubectl(fake_apiserver: FakeApiServer, tmp_path: Path):
    return make_kubectl(fake_apiserver, tmp_path / "kubectl-home")


# --- kubectl explain --------------------------------------------------------------------------


@pytest.mark.shared
def test_explain_predictor_lists_every_field_of_the_reference_crd(kubectl):
    wanted = set(root_schema(reference_crd("inferenceservices"))["properties"]["spec"]["properties"]["predictor"]["properties"])
    shown = explain_fields(kubectl("explain", "isvc.spec.predictor").stdout)
    assert len(wanted) == 69
    assert shown == wanted


def test_explain_shows_descriptions_from_the_kubernetes_client_and_kserve_types(kubectl):
    volumes = kubectl("explain", "isvc.spec.predictor.volumes").stdout
    assert "<[]Object>" in volumes
    assert "List of volumes that can be mounted by containers belonging to the pod." in volumes
    node_selector = kubectl("explain", "isvc.spec.predictor.nodeSelector").stdout
    assert "NodeSelector is a selector which must be true for the pod to fit on a node." in node_selector
    model = kubectl("explain", "isvc.spec.predictor.model").stdout
    assert "storageUri\t<string>" in model or re.search(r"storageUri\s+<string>", model)
    assert "The model to serve" in model


# --- validation -------------------------------------------------------------------------------

POD_LEVEL_MANIFEST = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: pod-level, namespace: default}
spec:
  predictor:
    automountServiceAccountToken: false
    securityContext: {runAsNonRoot: true, fsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions: [{key: pool, operator: In, values: [gpu]}]
    volumes:
    - {name: cache, emptyDir: {sizeLimit: 1Gi}}
    - {name: creds, secret: {secretName: s3-creds}}
    model:
      modelFormat: {name: sklearn}
      storageUri: gs://bucket/iris
      resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {nvidia.com/gpu: 1}}
      volumeMounts: [{name: cache, mountPath: /cache}]
      securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
      readinessProbe: {httpGet: {path: /v1/models/iris, port: 8080}}
"""


def test_strict_server_side_apply_accepts_crd_valid_pod_fields(kubectl, fake_apiserver):
    result = kubectl("apply", "--server-side", "-f", "-", input=POD_LEVEL_MANIFEST)
    assert "serverside-applied" in result.stdout
    stored = fake_apiserver.store.get("inferenceservices", "default", "pod-level")
    predictor = stored["spec"]["predictor"]
    assert predictor["automountServiceAccountToken"] is False
    assert predictor["volumes"][0]["emptyDir"]["sizeLimit"] == "1Gi"
    assert predictor["model"]["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"}]
    assert predictor["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_strict_server_side_apply_refuses_an_unknown_field_with_the_real_wording(kubectl):
    manifest = POD_LEVEL_MANIFEST.replace("    automountServiceAccountToken: false", "    bogus: 1")
    result = kubectl("apply", "--server-side", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    # The real server words it ".spec.predictor.bogus: field not declared in schema" (a
    # structured-merge-diff path); the sandbox's 422 names the field without the leading dot.
    assert "spec.predictor.bogus: field not declared in schema" in result.stderr


def test_quantities_and_int_or_string_ports_take_numbers_and_strings(fake_apiserver):
    body = isvc(containers=[{"name": "kserve-container", "image": "x",
                             "resources": {"limits": {"cpu": 1, "memory": "2Gi"}},
                             "livenessProbe": {"httpGet": {"port": "http"}}}])
    stored = fake_apiserver.store.create(body)
    assert stored["spec"]["predictor"]["containers"][0]["resources"]["limits"] == {"cpu": 1, "memory": "2Gi"}
    with pytest.raises(Exception, match="should match"):
        fake_apiserver.store.create(isvc("bad", containers=[
            {"name": "c", "resources": {"requests": {"memory": "lots"}}}]))


def test_container_port_protocol_defaults_to_tcp(fake_apiserver):
    stored = fake_apiserver.store.create(isvc(containers=[
        {"name": "kserve-container", "image": "x", "ports": [{"containerPort": 8080}]}]))
    assert stored["spec"]["predictor"]["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]


# --- kubectl get ------------------------------------------------------------------------------


@pytest.mark.shared
def test_default_get_isvc_header_is_name_plus_the_reference_printer_columns(kubectl, fake_apiserver):
    fake_apiserver.store.create(isvc())
    columns = reference_crd("inferenceservices")["spec"]["versions"][0]["additionalPrinterColumns"]
    assert all(c.get("priority", 0) == 0 for c in columns)
    header = kubectl("get", "isvc", "-n", "default").stdout.splitlines()[0].split()
    assert header == ["NAME", *(c["name"].upper() for c in columns)]


def test_runtimes_are_served_with_their_columns_and_scope(kubectl):
    resources = kubectl("api-resources", "--api-group=serving.kserve.io").stdout
    rows = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert rows["inferenceservices"][1] == "isvc" and rows["inferenceservices"][-2] == "true"
    assert rows["servingruntimes"][-2] == "true"
    assert rows["clusterservingruntimes"][-2] == "false"


# --- server-side apply: list and map semantics ------------------------------------------------


def _with_node_selector(selector: dict[str, str]) -> str:
    body = isvc("placed")
    body["spec"]["predictor"]["nodeSelector"] = selector
    return yaml.safe_dump(body)


def test_node_selector_is_atomic_across_field_managers(kubectl):
    kubectl("apply", "--server-side", "--field-manager", "a", "-f", "-", input=_with_node_selector({"pool": "gpu"}))
    result = kubectl("apply", "--server-side", "--field-manager", "b", "-f", "-",
                     input=_with_node_selector({"zone": "eu-1"}), check=False)
    assert result.returncode != 0
    assert "conflict" in result.stderr.lower()
    assert ".spec.predictor.nodeSelector" in result.stderr


def test_volume_mounts_are_a_map_keyed_by_mount_path(fake_apiserver):
    schema = generated("inferenceservices")
    mounts = root_schema(schema)["properties"]["spec"]["properties"]["predictor"]["properties"]["model"]["properties"]["volumeMounts"]
    assert mounts["x-kubernetes-list-type"] == "map" and mounts["x-kubernetes-list-map-keys"] == ["mountPath"]


# --- structure against the reference ----------------------------------------------------------


def _compare(ours: dict[str, Any], theirs: dict[str, Any], path: str, out: list[tuple[str, str, Any, Any]]) -> None:
    for key in COMPARED_KEYS:
        if ours.get(key) != theirs.get(key):
            out.append((path, key, ours.get(key), theirs.get(key)))
    mine, ref = ours.get("properties") or {}, theirs.get("properties") or {}
    if set(mine) != set(ref):
        out.append((path, "properties", sorted(set(mine) - set(ref)), sorted(set(ref) - set(mine))))
    for name in sorted(set(mine) & set(ref)):
        _compare(mine[name], ref[name], f"{path}.{name}", out)
    for sub, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(ours.get(sub), dict) and isinstance(theirs.get(sub), dict):
            _compare(ours[sub], theirs[sub], path + suffix, out)
        elif isinstance(ours.get(sub), dict) != isinstance(theirs.get(sub), dict):
            out.append((path, sub, ours.get(sub) is not None, theirs.get(sub) is not None))


@pytest.mark.shared
@pytest.mark.parametrize(("plural", "path"), [
    ("inferenceservices", "spec.predictor"),
    ("inferenceservices", "spec.transformer"),
    ("inferenceservices", "spec.explainer"),
    ("servingruntimes", "spec"),
    ("clusterservingruntimes", "spec"),
])
def test_generated_schema_has_the_reference_structure_and_markers(plural, path):
    ours, theirs = root_schema(generated(plural)), root_schema(reference_crd(plural))
    for part in path.split("."):
        ours, theirs = ours["properties"][part], theirs["properties"][part]
    differences: list[tuple[str, str, Any, Any]] = []
    _compare(ours, theirs, path, differences)
    remaining = [d for d in differences if (d[0], d[1]) not in ALLOWED_DIFFERENCES]
    assert remaining == []


@pytest.mark.shared
@pytest.mark.parametrize("plural", ["inferenceservices", "servingruntimes", "clusterservingruntimes"])
def test_names_scope_subresources_and_columns_match_the_reference(plural):
    ours, theirs = generated(plural)["spec"], reference_crd(plural)["spec"]
    assert ours["group"] == theirs["group"] and ours["scope"] == theirs["scope"]
    assert ours["names"] == theirs["names"]
    mine, ref = ours["versions"][0], theirs["versions"][0]
    assert mine["name"] == ref["name"]
    assert mine.get("subresources") == ref.get("subresources")
    assert mine.get("additionalPrinterColumns") == ref.get("additionalPrinterColumns")


@pytest.mark.shared
def test_every_reference_example_is_accepted_under_strict_validation(kubectl, fake_apiserver):
    require(EXAMPLES_DIR.is_dir(), f"KServe examples not found: {EXAMPLES_DIR}")
    examples = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "InferenceService":
                examples.append((path.name, doc))
    assert len(examples) >= 10
    for name, doc in examples:
        doc.setdefault("metadata", {})["namespace"] = "default"
        result = kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(doc), check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert fake_apiserver.store.get("inferenceservices", "default", doc["metadata"]["name"]) is not None


# --- the generator itself ---------------------------------------------------------------------


def test_generation_is_cached_and_leaves_out_fields_kserve_does_not_have():
    assert crdgen.builtin_crds() is crdgen.builtin_crds()
    predictor = root_schema(generated("inferenceservices"))["properties"]["spec"]["properties"]["predictor"]
    assert "ephemeralContainers" not in predictor["properties"]
    assert not {"schedulingGroup", "evictionResponders"} & set(predictor["properties"])
    assert "ephemeralContainers" in predictor["properties"]["workerSpec"]["properties"]
    assert predictor["properties"]["nodeSelector"]["x-kubernetes-map-type"] == "atomic"


def test_older_client_models_read_descriptions_from_docstrings_and_required_from_setters():
    class V1Old:
        openapi_types = {"name": "str", "ports": "list[V1ContainerPort]"}
        attribute_map = {"name": "name", "ports": "ports"}

        @property
        def name(self):
            """Gets the name of this V1Old.  # noqa: E501

            The name of the thing.  # noqa: E501
            Second line.

            :return: The name of this V1Old.  # noqa: E501
            :rtype: str
            """

        @name.setter
        def name(self, name):
            if name is None:
                raise ValueError("Invalid value for `name`, must not be `None`")  # noqa: E501

    # The setter's check is found in the source text of the class's module (this file).
    assert crdgen._field_facts(V1Old, "name") == ("The name of the thing. Second line.", True)
    assert crdgen._field_facts(V1Old, "ports") == ("", False)
    node = crdgen._k8s_field("V1Old", "ports", "list[V1ContainerPort]", "")
    assert node["type"] == "array" and node["x-kubernetes-list-type"] == "atomic"
    assert node["items"]["properties"]["protocol"]["default"] == "TCP"
