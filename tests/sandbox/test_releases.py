"""The sandbox plays each KServe release 0.13-0.20 from that release's own files, so what a
real cluster on that release accepts and refuses, the sandbox accepts and refuses, in the
release's words. Parametrised by release; the data is ../shared/kserve/versions/<release>/.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import yaml

from endpoints.sandbox import profile as profiles
from tests.fixtures.kube import (
    KSERVE_EXAMPLES_DIR,
    KSERVE_RELEASES,
    KSERVE_VERSIONS_DIR,
    release_sandbox,
    require,
)

pytestmark = pytest.mark.shared

ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
MODE = "serving.kserve.io/deploymentMode"


def _request(server, method: str, path: str, body=None, *, query: str = "",
             content_type: str = "application/json") -> tuple[int, dict]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"{server.url}{path}{'?' + query if query else ''}", data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _create(sandbox, obj: dict, namespace: str = "default") -> tuple[int, dict]:
    return _request(sandbox.server, "POST", ISVC_PATH.format(ns=namespace), obj, query="fieldValidation=Strict")


def _isvc(name: str, predictor: dict, annotations: dict | None = None) -> dict:
    meta = {"name": name, **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": meta,
            "spec": {"predictor": predictor}}


def _release_files(release: str):
    folder = KSERVE_VERSIONS_DIR / release
    require(folder.is_dir(), f"KServe release data not found at {folder}")
    return folder


def _crd_schema(release: str) -> dict:
    crd = yaml.safe_load((_release_files(release) / "crds" / "inferenceservices.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return version["schema"]["openAPIV3Schema"]


def _undeclared(value, schema: dict, path: str = "") -> list[str]:
    """Fields of ``value`` the structural schema does not declare (the test's own walk, so the
    sandbox is not checked against itself)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        found = []
        for key, child in value.items():
            if props is not None and key in props:
                found += _undeclared(child, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += _undeclared(child, extra, f"{path}.{key}")
            elif props is not None and not (path == "" and key in ("apiVersion", "kind")) and path != ".metadata":
                found.append(f"{path}.{key}")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [f for item in value for f in _undeclared(item, schema["items"], f"{path}[]")]
    return []


def _examples() -> list[tuple[str, dict]]:
    if not KSERVE_EXAMPLES_DIR.is_dir():
        return []
    return [(f.name, doc) for f in sorted(KSERVE_EXAMPLES_DIR.glob("*.yaml"))
            for doc in yaml.safe_load_all(f.read_text()) if isinstance(doc, dict)
            and doc.get("kind") == "InferenceService"]


def _conditions(obj: dict | None) -> dict[str, dict]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def _failure(sandbox, name: str, namespace: str = "default") -> dict:
    return sandbox.wait_for(lambda: ((sandbox.isvc(namespace, name) or {}).get("status") or {})
                            .get("modelStatus", {}).get("lastFailureInfo"), message=f"{name} to fail")


# --- the profile is the release's files --------------------------------------------------


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_a_release_directory_is_a_profile_of_that_release(release):
    folder = _release_files(release)
    loaded = profiles.load(folder)
    kustomization = yaml.safe_load((folder / "runtimes" / "kustomization.yaml").read_text())
    installed = {yaml.safe_load((folder / "runtimes" / f).read_text())["metadata"]["name"]
                 for f in kustomization["resources"]}
    assert {r["metadata"]["name"] for r in loaded.runtimes} == installed
    assert len(loaded.crds) == 3
    assert loaded.isvc_config["metadata"]["name"] == "inferenceservice-config"
    # Told apart by what the CRD declares: 0.18 and 0.19 declare what 0.17 declares.
    expected = {"0.13.1": (0, 13), "0.14.1": (0, 14), "0.15.2": (0, 15, 1), "0.16.0": (0, 16),
                "0.17.1": (0, 17), "0.18.1": (0, 17), "0.19.0": (0, 17), "0.20.0": (0, 20)}[release]
    assert loaded.facts.version == expected


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_the_cluster_holds_the_releases_runtimes_config_and_knative_defaults(release):
    with release_sandbox(release) as sandbox:
        names = {r["metadata"]["name"] for r in sandbox.store.list("clusterservingruntimes")}
        assert names == {r["metadata"]["name"] for r in profiles.load(_release_files(release)).runtimes}
        assert ("kserve-vllmserver" in names) == (release == "0.20.0")
        config = sandbox.store.get("configmaps", "kserve", "inferenceservice-config")
        modelcar = json.loads(config["data"]["storageInitializer"])["enableModelcar"]
        assert modelcar is (release not in ("0.13.1", "0.14.1"))
        features = sandbox.store.get("configmaps", "knative-serving", "config-features")["data"]
        assert features["kubernetes.podspec-nodeselector"] == "disabled"
        assert features["kubernetes.podspec-tolerations"] == "disabled"
        assert features["kubernetes.podspec-affinity"] == "disabled"
        defaults = sandbox.store.get("configmaps", "knative-serving", "config-defaults")["data"]
        assert defaults["max-revision-timeout-seconds"] == "600"


# --- what the release's CRD accepts and refuses -------------------------------------------


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_upstream_examples_the_release_crd_declares_are_accepted(release):
    examples = _examples()
    require(bool(examples), f"KServe examples not found in {KSERVE_EXAMPLES_DIR}")
    schema = _crd_schema(release)
    with release_sandbox(release) as sandbox:
        accepted = refused = 0
        for index, (filename, example) in enumerate(examples):
            example = {**example, "metadata": {**example["metadata"], "name": f"example-{index}"}}
            code, body = _create(sandbox, example)
            undeclared = _undeclared(example, schema)
            if undeclared:
                assert code == 400, (filename, body)
                assert "strict decoding error" in body["message"] and undeclared[0].lstrip(".") in body["message"]
                refused += 1
            else:
                assert code == 201, (filename, body)
                accepted += 1
        assert accepted >= 8, "most upstream examples use fields every release declares"


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_a_logger_field_newer_than_the_release_is_refused_under_strict(release):
    predictor = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"},
                 "logger": {"mode": "all", "url": "http://sink", "storage": {"path": "/logs"}}}
    with release_sandbox(release) as sandbox:
        code, body = _create(sandbox, _isvc("logged", predictor))
    if release in ("0.13.1", "0.14.1", "0.15.2"):  # logger.storage arrived in 0.16
        assert code == 400
        assert body["reason"] == "BadRequest"
        assert body["message"] == ('InferenceService in version "v1beta1" cannot be handled as a InferenceService: '
                                   'strict decoding error: unknown field "spec.predictor.logger.storage"')
    else:
        assert code == 201, body


# --- deployment modes --------------------------------------------------------------------


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_the_new_mode_spelling_on_each_release(release):
    """``Knative`` is a mode from 0.16; before, it is an unknown value: silently the default
    (Serverless), recorded from 0.15, and from 0.15.1 every later update is refused."""
    with release_sandbox(release) as sandbox:
        code, created = _create(sandbox, _isvc("moded", {"model": {"modelFormat": {"name": "sklearn"},
                                                                   "storageUri": "gs://bucket/iris"}},
                                              {MODE: "Knative"}))
        assert code == 201, created
        ready = sandbox.wait_ready("default", "moded")
        recorded = ready["status"].get("deploymentMode")
        assert recorded == {"0.13.1": None, "0.14.1": None, "0.15.2": "Serverless"}.get(release, "Knative")
        assert ready["status"]["url"] == "http://moded.default.example.com"  # a Knative URL either way
        patch = {"spec": {"predictor": {"minReplicas": 2}}}
        code, body = _request(sandbox.server, "PATCH", ISVC_PATH.format(ns="default") + "/moded", patch,
                              content_type="application/merge-patch+json")
        if release == "0.15.2":
            assert code == 403
            assert body["message"] == ('admission webhook "inferenceservice.kserve-webhook-server.validator" '
                                       "denied the request: update rejected: deploymentMode cannot be changed "
                                       "from 'Serverless' to 'Knative'")
        else:
            assert code == 200, body


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_the_old_mode_spelling_on_each_release(release):
    """``Serverless`` is the mode before 0.16; 0.16 understands it but keeps it in the annotation
    while recording ``Knative``, so its updates are refused; 0.17 rewrites it on admission."""
    with release_sandbox(release) as sandbox:
        code, created = _create(sandbox, _isvc("legacy", {"model": {"modelFormat": {"name": "sklearn"},
                                                                    "storageUri": "gs://bucket/iris"}},
                                               {MODE: "Serverless"}))
        assert code == 201, created
        rewritten = release not in ("0.13.1", "0.14.1", "0.15.2", "0.16.0")
        assert created["metadata"]["annotations"][MODE] == ("Knative" if rewritten else "Serverless")
        sandbox.wait_ready("default", "legacy")
        code, body = _request(sandbox.server, "PATCH", ISVC_PATH.format(ns="default") + "/legacy",
                              {"spec": {"predictor": {"minReplicas": 2}}},
                              content_type="application/merge-patch+json")
        if release == "0.16.0":
            assert code == 403
            assert "deploymentMode cannot be changed from 'Knative' to 'Serverless'" in body["message"]
        else:
            assert code == 200, body


@pytest.mark.parametrize("release", ["0.15.2", "0.16.0", "0.20.0"])
def test_changing_the_recorded_mode_is_refused_from_0_15_1(release):
    standard = "RawDeployment" if release == "0.15.2" else "Standard"
    knative = "Serverless" if release == "0.15.2" else "Knative"
    with release_sandbox(release) as sandbox:
        _create(sandbox, _isvc("fixed", {"model": {"modelFormat": {"name": "sklearn"},
                                                   "storageUri": "gs://bucket/iris"}}, {MODE: standard}))
        assert sandbox.wait_ready("default", "fixed")["status"]["url"] == "http://fixed-default.example.com"
        code, body = _request(sandbox.server, "PATCH", ISVC_PATH.format(ns="default") + "/fixed",
                              {"metadata": {"annotations": {MODE: knative}}},
                              content_type="application/merge-patch+json")
        assert code == 403
        assert f"deploymentMode cannot be changed from '{standard}' to '{knative}'" in body["message"]


# --- runtimes as the release installs them --------------------------------------------------


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_xgboost_2_on_the_v1_protocol_needs_a_release_whose_xgbserver_declares_it(release):
    predictor = {"model": {"modelFormat": {"name": "xgboost", "version": "2"}, "storageUri": "gs://bucket/xgb"}}
    with release_sandbox(release) as sandbox:
        assert _create(sandbox, _isvc("xgb", predictor))[0] == 201
        if release in ("0.13.1", "0.14.1", "0.15.2", "0.16.0"):  # xgbserver declares xgboost 1 until 0.17
            failure = _failure(sandbox, "xgb")
            assert failure["reason"] == "NoSupportingRuntime"
            assert failure["message"] == ("No runtime found to support specified framework/version: "
                                          "xgboost (version 2) with protocol v1")
            assert _conditions(sandbox.isvc("default", "xgb"))["PredictorReady"]["reason"] == "NoSupportingRuntime"
        else:
            ready = sandbox.wait_ready("default", "xgb")
            assert ready["status"]["clusterServingRuntimeName"] == "kserve-xgbserver"


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_the_vllm_runtime_exists_only_where_the_release_installs_it(release):
    predictor = {"model": {"modelFormat": {"name": "vLLM"}, "runtime": "kserve-vllmserver",
                           "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct"}}
    with release_sandbox(release) as sandbox:
        assert _create(sandbox, _isvc("llm", predictor))[0] == 201
        if release == "0.20.0":
            assert sandbox.wait_ready("default", "llm")["status"]["clusterServingRuntimeName"] == "kserve-vllmserver"
        else:
            failure = _failure(sandbox, "llm")
            assert failure == {**failure, "reason": "RuntimeNotRecognized",
                               "message": "Waiting for runtime to become available: kserve-vllmserver"}


# --- storage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_oci_model_uris_need_modelcar_which_013_and_014_ship_disabled(release):
    predictor = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "oci://registry.local/models/iris:1"}}
    with release_sandbox(release) as sandbox:
        assert _create(sandbox, _isvc("oci", predictor))[0] == 201
        if release in ("0.13.1", "0.14.1"):
            failure = _failure(sandbox, "oci")
            assert failure["reason"] == "ModelLoadFailed"
            assert failure["message"].startswith("Cannot recognize storage type for oci://registry.local/models/iris:1")
            pod = sandbox.store.list("pods", "default", label_selector="serving.kserve.io/inferenceservice=oci")[0]
            init = pod["status"]["initContainerStatuses"][0]
            assert init["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            assert "Cannot recognize storage type" in init["lastState"]["terminated"]["message"]
            # An admin turns modelcar on: the next pass loads the model.
            config = sandbox.store.get("configmaps", "kserve", "inferenceservice-config")
            section = json.loads(config["data"]["storageInitializer"])
            section["enableModelcar"] = True
            sandbox.store.patch("configmaps", "kserve", "inferenceservice-config",
                                {"data": {"storageInitializer": json.dumps(section)}})
        sandbox.wait_ready("default", "oci")
