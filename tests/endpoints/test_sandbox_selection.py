"""The sandbox's own KServe runtime selection (endpoints.sandbox.selection) and what the
simulated controller reports with it: KServe's rules from shared/docs/kserve.md §3, the
failure reasons KServe writes into modelStatus, and the release profile the controller runs on."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import yaml

from endpoints.sandbox import profile as profiles
from endpoints.sandbox.controller import SandboxSettings
from endpoints.sandbox.run import start_sandbox
from endpoints.sandbox.selection import ModelRequest, select_runtime, supporting_runtimes
from tests.fixtures.kube import Sandbox

BUILTIN = profiles.load_builtin()
ORDER = BUILTIN.protocol_order


def pick(fmt, version=None, protocol=None, runtime=None, *, multinode=False, namespaced=(), cluster=None):
    request = ModelRequest(format=fmt, version=version, protocol=protocol, runtime=runtime, multinode=multinode)
    return select_runtime(request, namespaced, BUILTIN.runtimes if cluster is None else cluster, ORDER)


def runtime(name, formats, protocols=("v1", "v2"), *, kind="ServingRuntime", created="2026-01-01T00:00:00Z", **spec):
    body = {"supportedModelFormats": formats, "containers": [{"name": "kserve-container", "image": "x"}], **spec}
    if protocols is not None:
        body["protocolVersions"] = list(protocols)
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "creationTimestamp": created}, "spec": body}


def fmt(name, version=None, auto=True, priority=None):
    entry = {"name": name, "autoSelect": auto}
    if version is not None:
        entry["version"] = version
    if priority is not None:
        entry["priority"] = priority
    return entry


# --- auto-selection: kserve.md §3's worked examples ---------------------------------------


def test_sklearn_without_protocol_gets_the_sklearn_server_because_mlserver_is_v2_only():
    assert pick("sklearn").name == "kserve-sklearnserver"


def test_sklearn_v2_gets_mlserver_because_priority_2_beats_1():
    found = supporting_runtimes(ModelRequest("sklearn", protocol="v2"), [], BUILTIN.runtimes, ORDER)
    assert [r["metadata"]["name"] for _, r in found] == ["kserve-mlserver", "kserve-sklearnserver"]


def test_a_runtime_listing_no_protocol_matches_any():
    for protocol in (None, "v1", "v2", "grpc-v1", "grpc-v2"):
        assert pick("vLLM", protocol=protocol).name == "kserve-vllmserver"


def test_the_predictive_server_is_never_auto_selected_but_serves_when_named():
    for name in ("sklearn", "xgboost", "lightgbm"):
        assert pick(name, protocol="v1").name != "kserve-predictiveserver"
    assert pick("sklearn", "1", "v1", runtime="kserve-predictiveserver").name == "kserve-predictiveserver"


def test_versions_are_exact_strings():
    assert pick("sklearn", "1").name == "kserve-sklearnserver"
    failure = pick("sklearn", "1.3")
    assert (failure.reason, failure.message) == (
        "NoSupportingRuntime",
        "No runtime found to support specified framework/version: sklearn (version 1.3) with protocol v1")
    # A version given as "" is a version too: it matches nothing (KServe's mt:sklearn: label).
    assert pick("sklearn", "").reason == "NoSupportingRuntime"


def test_format_names_are_case_sensitive():
    assert pick("vllm").reason == "NoSupportingRuntime"


def test_the_multinode_runtime_is_picked_only_for_a_predictor_with_a_worker_spec():
    assert pick("huggingface", protocol="v2").name == "kserve-huggingfaceserver"
    assert pick("huggingface", protocol="v2", multinode=True).name == "kserve-huggingfaceserver-multinode"
    assert pick("sklearn", multinode=True).reason == "NoSupportingRuntime"


def test_namespace_runtimes_come_before_cluster_runtimes_whatever_their_priority():
    team = runtime("team-sklearn", [fmt("sklearn", "1")])
    chosen = pick("sklearn", protocol="v2", namespaced=[team])
    assert (chosen.name, chosen.kind) == ("team-sklearn", "ServingRuntime")
    assert pick("sklearn", protocol="v2").kind == "ClusterServingRuntime"


def test_within_a_group_priority_then_any_priority_then_lowest_protocol_then_newest_then_name():
    rts = [
        runtime("none-v2", [fmt("f")], ("v2",)),
        runtime("p1-v2-grpc", [fmt("f", priority=1)], ("v2", "grpc-v2")),
        runtime("p1-v1-old", [fmt("f", priority=1)], ("v1", "v2"), created="2025-01-01T00:00:00Z"),
        runtime("p1-v1-new-b", [fmt("f", priority=1)], ("v2", "v1")),
        runtime("p1-v1-new-a", [fmt("f", priority=1)], ("v1", "v2")),
        runtime("p5-grpc", [fmt("f", priority=5)], ("grpc-v1", "v2")),
        runtime("p1-any", [fmt("f", priority=1)], None),
    ]
    found = supporting_runtimes(ModelRequest("f", protocol="v2"), [], rts, ORDER)
    assert [r["metadata"]["name"] for _, r in found] == [
        "p5-grpc", "p1-v1-new-a", "p1-v1-new-b", "p1-v1-old", "p1-v2-grpc", "p1-any", "none-v2"]


def test_the_priority_is_that_of_the_first_entry_with_the_format_name():
    first_low = runtime("first-low", [fmt("f", "1", priority=1), fmt("f", "2", priority=9)])
    flat = runtime("flat", [fmt("f", "2", priority=5)])
    assert pick("f", "2", cluster=[first_low, flat]).name == "flat"


def test_disabled_multi_model_and_not_auto_selectable_runtimes_are_never_candidates():
    rts = [runtime("off", [fmt("f", priority=9)], disabled=True),
           runtime("mesh", [fmt("f", priority=9)], multiModel=True),
           runtime("manual", [fmt("f", auto=False, priority=9)]),
           runtime("plain", [fmt("f")])]
    assert pick("f", cluster=rts).name == "plain"


# --- explicit runtime: KServe's checks and failure reasons ---------------------------------


def test_an_unknown_runtime_is_not_recognized():
    failure = pick("sklearn", runtime="nope")
    assert (failure.reason, failure.message) == ("RuntimeNotRecognized", "Waiting for runtime to become available: nope")


def test_a_disabled_runtime_is_refused_even_if_it_would_fit():
    off = runtime("off", [fmt("sklearn")], disabled=True)
    failure = pick("sklearn", runtime="off", namespaced=[off])
    assert (failure.reason, failure.message) == ("RuntimeDisabled", "Runtime off is disabled")


def test_a_namespace_runtime_shadows_a_cluster_runtime_of_the_same_name():
    mine = runtime("kserve-sklearnserver", [fmt("sklearn")])
    chosen = pick("sklearn", runtime="kserve-sklearnserver", namespaced=[mine])
    assert chosen.kind == "ServingRuntime"


def test_an_explicit_runtime_needs_the_protocol_the_model_sets():
    failure = pick("sklearn", protocol="v1", runtime="kserve-mlserver")
    assert failure.reason == "NoSupportingRuntime"
    assert failure.message.startswith("Specified runtime does not support specified protocol version")
    # Unset, KServe does not check it: it then takes the runtime's lowest protocol.
    assert pick("sklearn", runtime="kserve-mlserver").name == "kserve-mlserver"


def test_an_explicit_runtime_needs_the_format_but_not_auto_select():
    failure = pick("onnx", protocol="v2", runtime="kserve-mlserver")
    assert failure.reason == "NoSupportingRuntime"
    assert failure.message.startswith("Specified runtime does not support specified framework/version")
    assert pick("pytorch", "1", "v2", runtime="kserve-tritonserver").name == "kserve-tritonserver"


def test_an_explicit_multi_node_runtime_needs_a_worker_spec():
    assert pick("huggingface", runtime="kserve-huggingfaceserver-multinode").reason == "NoSupportingRuntime"
    assert pick("huggingface", runtime="kserve-huggingfaceserver-multinode", multinode=True).ok
    assert pick("huggingface", runtime="kserve-huggingfaceserver", multinode=True).reason == "NoSupportingRuntime"


def test_model_request_reads_the_predictor_as_kserve_does():
    request = ModelRequest.from_predictor({
        "model": {"modelFormat": {"name": "huggingface", "version": "1"}, "runtime": "rt", "protocolVersion": "v2"},
        "workerSpec": {"tensorParallelSize": 2}})
    assert request == ModelRequest("huggingface", "1", "v2", "rt", multinode=True)
    assert ModelRequest.from_predictor({"model": {"modelFormat": {"name": "sklearn"}}}) == ModelRequest("sklearn")


# --- the controller on its release profile --------------------------------------------------


def _isvc(name, namespace="ml", **model):
    spec = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris", **model}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"predictor": {"model": spec}}}


def _status(sandbox, name, namespace="ml"):
    def has_runtime_verdict():
        status = (sandbox.isvc(namespace, name) or {}).get("status") or {}
        if status.get("clusterServingRuntimeName") or status.get("servingRuntimeName"):
            return status
        return status if (status.get("modelStatus") or {}).get("lastFailureInfo") else None

    return sandbox.wait_for(has_runtime_verdict, message=f"{namespace}/{name} to get a runtime or a failure")


@pytest.fixture
def ml(sandbox):
    sandbox.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
    return sandbox


def test_the_controller_installs_the_profiles_runtimes(sandbox):
    installed = {r["metadata"]["name"]: r for r in sandbox.store.list("clusterservingruntimes")}
    assert set(installed) == {r["metadata"]["name"] for r in BUILTIN.runtimes}
    mlserver = installed["kserve-mlserver"]
    assert mlserver["spec"]["supportedModelFormats"] == BUILTIN.runtime("kserve-mlserver")["spec"][
        "supportedModelFormats"]
    assert mlserver["metadata"]["managedFields"][0]["manager"] == "kserve-installer"


def test_the_controller_records_the_selected_runtime_in_status(ml):
    ml.store.create(_isvc("auto"))
    ml.store.create(_isvc("v2", protocolVersion="v2"))
    assert _status(ml, "auto")["clusterServingRuntimeName"] == "kserve-sklearnserver"
    assert _status(ml, "v2")["clusterServingRuntimeName"] == "kserve-mlserver"


def test_a_namespace_runtime_is_recorded_as_a_serving_runtime(ml):
    ml.store.create(runtime("team-sklearn", [fmt("sklearn", "1")]) | {"metadata": {"name": "team-sklearn",
                                                                                      "namespace": "ml"}})
    ml.store.create(_isvc("mine"))
    status = _status(ml, "mine")
    assert status["servingRuntimeName"] == "team-sklearn" and "clusterServingRuntimeName" not in status


@pytest.mark.parametrize(("model", "reason", "message"), [
    ({"runtime": "nope"}, "RuntimeNotRecognized", "Waiting for runtime to become available: nope"),
    ({"modelFormat": {"name": "onnx"}}, "NoSupportingRuntime",
     "No runtime found to support specified framework/version: onnx with protocol v1"),
    ({"runtime": "kserve-mlserver", "protocolVersion": "v1"}, "NoSupportingRuntime",
     "Specified runtime does not support specified protocol version: kserve-mlserver supports v2, not v1"),
])
def test_runtime_failures_are_reported_as_kserve_reports_them(ml, model, reason, message):
    ml.store.create(_isvc("broken", **model))
    status = _status(ml, "broken")
    failure = status["modelStatus"]["lastFailureInfo"]
    assert (status["modelStatus"]["transitionStatus"], failure["reason"], failure["message"]) == (
        "InvalidSpec", reason, message)
    predictor = next(c for c in status["conditions"] if c["type"] == "PredictorReady")
    assert (predictor["status"], predictor["reason"]) == ("False", reason)


def test_a_disabled_cluster_runtime_is_refused_by_name_and_skipped_by_auto_selection(ml):
    ml.store.patch("clusterservingruntimes", None, "kserve-sklearnserver", {"spec": {"disabled": True}})
    ml.store.create(_isvc("named", runtime="kserve-sklearnserver"))
    ml.store.create(_isvc("auto"))
    assert _status(ml, "named")["modelStatus"]["lastFailureInfo"]["reason"] == "RuntimeDisabled"
    assert _status(ml, "auto")["modelStatus"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"


def test_the_webhook_defaulting_comes_from_the_profile(ml):
    legacy = _isvc("legacy")
    legacy["spec"]["predictor"] = {"sklearn": {"storageUri": "gs://bucket/iris"}}
    legacy["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    stored = ml.store.create(legacy)
    assert stored["spec"]["predictor"]["model"]["modelFormat"] == {"name": "sklearn"}
    assert stored["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    triton = ml.store.create(_isvc("triton", modelFormat={"name": "triton"}))
    assert triton["spec"]["predictor"]["model"]["protocolVersion"] == "v2"


def test_settings_can_point_the_controller_at_another_profile(tmp_path):
    folder = tmp_path / "tiny"
    (folder / "runtimes").mkdir(parents=True)
    (folder / "profile.yaml").write_text("name: tiny\nkserveVersion: '0.16'\nprotocolOrder: [v1, v2]\n")
    (folder / "runtimes" / "only.yaml").write_text(yaml.safe_dump(
        runtime("only-sklearn", [fmt("sklearn", priority=1)], kind="ClusterServingRuntime")))
    server, controller = start_sandbox(settings=SandboxSettings(profile=folder))
    sandbox = Sandbox(server, controller)
    try:
        assert controller.profile.name == "tiny"
        assert [r["metadata"]["name"] for r in sandbox.store.list("clusterservingruntimes")] == ["only-sklearn"]
        sandbox.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
        sandbox.store.create(_isvc("auto"))
        assert _status(sandbox, "auto")["clusterServingRuntimeName"] == "only-sklearn"
        # A 0.16 profile: its webhook keeps the old spelling as written (0.17 rewrites it).
        old = _isvc("old")
        old["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "Serverless"}
        assert sandbox.store.create(old)["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    finally:
        controller.stop()
        server.stop()


def test_importing_the_sandbox_imports_nothing_of_the_console():
    # Layering: endpoints/sandbox/ is a separate program; a fresh interpreter shows what it pulls in.
    code = ("import sys, endpoints.sandbox.run, endpoints.sandbox.controller; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('django', 'console', 'audit', 'monitoring', 'endpoints', 'celery', 'rest_framework')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=str(profiles.BUILTIN_PROFILE_DIR.parents[3]))
    modules = ast.literal_eval(result.stdout)
    outside = [m for m in modules if m != "endpoints" and not m.startswith("endpoints.sandbox")]
    assert outside == []

