"""Rendered InferenceService manifests: every valid combination of the console's choices must
give a manifest KServe's CRD accepts with unknown fields rejected, rendering must be
deterministic, and the KServe traps (docs/kserve.md) must be avoided."""

from __future__ import annotations

import copy
import itertools
import json

import pytest

from endpoints import catalog, reconcile, runtimes
from endpoints.validation import EndpointDraft, HardwareLimits, validate_endpoint
from tests.endpoints.crd_schema import isvc_validator, schema_errors

BUILT_IN = catalog.BUILT_IN_RUNTIMES
GPU_PROFILE = {
    "name": "a100",
    "accelerator_resource": "nvidia.com/gpu",
    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}
GPU_LIMITS = HardwareLimits(name="a100", accelerator_resource="nvidia.com/gpu", max_accelerators_per_replica=8,
                            max_cpu="64", max_memory="512Gi")

# format → (format version, storage URI of v1, of v2, task for V1/V2, task for OpenAI)
FORMATS = {
    "sklearn": ("1", "s3://models/iris/1", "s3://models/iris/2", "classification", None),
    "xgboost": ("2", "gs://models/xgb/1", "gs://models/xgb/2", "regression", None),
    "tensorflow": ("", "pvc://models/tf/1", "pvc://models/tf/2", "classification", None),
    "pytorch": ("1", "oci://registry.example.com/torch:1", "oci://registry.example.com/torch:2", "classification", None),
    "huggingface": ("", "hf://org/bert-1", "hf://org/bert-2", "classification", "llm-chat"),
    "vLLM": ("", "hf://org/llama-1", "hf://org/llama-2", "llm-completion", "llm-completion"),
}


def make_spec(**overrides) -> dict:
    """A desired-spec snapshot with the shape endpoints/spec.py builds."""
    spec = {
        "name": "iris",
        "namespace": "team-a",
        "project": "team-a",
        "project_id": 3,
        "endpoint_id": 42,
        "console_instance": "console-test",
        "generation": 1,
        "deployment_mode": "Knative",
        "model": {"version_id": 11, "registered_model": "iris", "version": 1, "storage_uri": "s3://models/iris/1",
                  "format": "sklearn", "format_version": "1", "task": "classification"},
        "runtime": None,
        "kserve_protocol": "v1",
        "protocol": "v1",
        "min_replicas": 1,
        "max_replicas": 1,
        "scale_metric": "",
        "scale_target": None,
        "container_concurrency": None,
        "timeout_seconds": None,
        "hardware": None,
        "resources": {"cpu_request": "", "cpu_limit": "", "memory_request": "", "memory_limit": ""},
        "env": [],
        "args": [],
        "canary": None,
        "logging": None,
        "stopped": False,
    }
    spec.update(overrides)
    return spec


# --- the matrix ----------------------------------------------------------------------------

MATRIX_AXES = {
    "format": list(FORMATS),
    "protocol": ["v1", "v2", "openai"],
    "mode": ["Knative", "Standard"],
    "gpu": [False, True],
    "canary": [False, True],
    "scale_to_zero": [False, True],
    "logging": [False, True],
    "explicit_runtime": [False, True],
}


# Storage URIs by scheme (model version 1, canary version 2), for combinations that choose one.
STORAGE_URIS = {
    "s3": ("s3://models/{f}/1", "s3://models/{f}/2"),
    "gs": ("gs://models/{f}/1", "gs://models/{f}/2"),
    "hf": ("hf://org/{f}-1", "hf://org/{f}-2"),
    "oci": ("oci://registry.example.com/{f}:1", "oci://registry.example.com/{f}:2"),
    "pvc": ("pvc://models/{f}/1", "pvc://models/{f}/2"),
    "https": ("https://models.example.com/{f}/1.tar.gz", "https://models.example.com/{f}/2.tar.gz"),
}
# Hardware profiles by name: (limits for validation, the profile as desired_spec snapshots it).
HARDWARE = {
    "gpu": (GPU_LIMITS, GPU_PROFILE),
    # An NVIDIA profile with no node placement (no node selector, no tolerations).
    "gpu-bare": (HardwareLimits(name="gpu-bare", accelerator_resource="nvidia.com/gpu",
                                max_accelerators_per_replica=8, max_cpu="64", max_memory="512Gi"),
                 {"name": "gpu-bare", "accelerator_resource": "nvidia.com/gpu", "node_selector": {},
                  "tolerations": []}),
    # An accelerator KServe does not treat as a GPU (runtimes with a GPU image run the CPU one).
    "amd": (HardwareLimits(name="mi300", accelerator_resource="amd.com/gpu", max_accelerators_per_replica=8,
                           max_cpu="64", max_memory="512Gi"),
            {"name": "mi300", "accelerator_resource": "amd.com/gpu", "node_selector": {}, "tolerations": []}),
}


def _combination_to_draft_and_spec(combo: dict, *, available_runtimes=BUILT_IN, capabilities=None,
                                   known_runtimes=BUILT_IN) -> tuple[EndpointDraft, dict]:
    """A combination of the console's choices as the validation draft and the desired-spec snapshot.

    ``combo`` has the ``MATRIX_AXES`` keys; the release matrix (test_release_matrix.py) adds optional
    ones: ``hardware`` (a ``HARDWARE`` name or None, instead of ``gpu``), ``storage`` (a
    ``STORAGE_URIS`` scheme), ``timeout``, ``format_version``/``task`` (formats not in ``FORMATS``),
    ``name``, ``small`` (small CPU requests) and ``resources`` for GPU profiles. ``available_runtimes``
    are the runtimes KServe could select (a cluster's, read), ``capabilities`` the cluster's reading;
    an explicit runtime is what auto-selection gives there, else in ``known_runtimes``."""
    fmt = combo["format"]
    fmt_version, uri, canary_uri, task, llm_task = FORMATS.get(fmt, ("", "", "", "classification", None))
    fmt_version = combo.get("format_version", fmt_version)
    task = combo.get("task", task)
    if combo.get("storage"):
        uri, canary_uri = (u.format(f=fmt.lower()) for u in STORAGE_URIS[combo["storage"]])
    if combo["protocol"] == "openai" and llm_task:
        task = llm_task
    hardware_name = combo.get("hardware", "gpu" if combo.get("gpu") else None)
    limits, profile = HARDWARE[hardware_name] if hardware_name else (None, None)
    accelerated = limits is not None
    # The runtime the console would pin when the user picks "explicit": what auto-selection gives.
    auto_runtime, _ = runtimes.resolve_auto_runtime(fmt, fmt_version or None, combo["protocol"], available_runtimes)
    if auto_runtime is None and available_runtimes is not known_runtimes:
        auto_runtime, _ = runtimes.resolve_auto_runtime(fmt, fmt_version or None, combo["protocol"], known_runtimes)
        if auto_runtime is not None:  # the cluster's copy of it (its own formats), when installed
            auto_runtime = next((r for r in available_runtimes if r.name == auto_runtime.name), auto_runtime)
    runtime = auto_runtime if combo["explicit_runtime"] else None
    knative = combo["mode"] == "Knative"
    metric = ("concurrency" if knative else "cpu") if accelerated else ""
    small = combo.get("small", False)
    cpu = ("2", "4", "16Gi", "32Gi") if accelerated else (("100m", "200m", "128Mi", "256Mi") if small
                                                          else ("500m", "1", "1Gi", "2Gi"))
    draft = EndpointDraft(
        name=combo.get("name") or f"{fmt.lower()}-{combo['protocol']}",
        namespace="team-a",
        model_format=fmt,
        model_format_version=fmt_version,
        storage_uri=uri,
        model_task=task,
        deployment_mode=combo["mode"],
        runtime=runtime,
        protocol=combo["protocol"],
        min_replicas=0 if combo.get("scale_to_zero") else 1,
        max_replicas=3,
        scale_metric=metric,
        scale_target=(4 if knative else 75) if metric else None,
        container_concurrency=8 if knative and not accelerated else None,
        timeout_seconds=combo.get("timeout"),
        hardware=(HardwareLimits(**{**limits.__dict__, "tolerations": tuple(profile["tolerations"]), "pod_fields": tuple(
            k for k, v in (("nodeSelector", profile["node_selector"]), ("tolerations", profile["tolerations"])) if v)})
            if accelerated else None),
        accelerator_count=1 if accelerated else 0,
        cpu_request=cpu[0],
        cpu_limit=cpu[1],
        memory_request=cpu[2],
        memory_limit=cpu[3],
        env=[{"name": "LOG_LEVEL", "value": "info"}],
        args=["--max-model-len=4096"] if fmt == "vLLM" else [],
        primary_model_id=5,
        canary_version_model_id=5 if combo["canary"] else None,
        canary_storage_uri=canary_uri if combo["canary"] else "",
        canary_traffic_percent=10 if combo["canary"] else None,
        logging_mode="all" if combo["logging"] else "off",
        available_runtimes=available_runtimes,
        capabilities=capabilities,
    )
    serving = runtime or auto_runtime
    spec = make_spec(
        name=draft.name,
        deployment_mode=draft.deployment_mode,
        model={"version_id": 11, "registered_model": fmt.lower(), "version": 1, "storage_uri": uri, "format": fmt,
               "format_version": fmt_version, "task": task},
        runtime={"name": runtime.name, "openai_compatible": runtime.openai_compatible} if runtime else None,
        kserve_protocol=(runtimes.kserve_protocol(draft.protocol, serving, model_format=fmt) if serving
                         else draft.protocol),
        protocol=draft.protocol,
        min_replicas=draft.min_replicas,
        max_replicas=draft.max_replicas,
        scale_metric=draft.scale_metric,
        scale_target=draft.scale_target,
        container_concurrency=draft.container_concurrency,
        timeout_seconds=draft.timeout_seconds,
        hardware={**profile, "accelerator_count": 1} if accelerated else None,
        resources={"cpu_request": draft.cpu_request, "cpu_limit": draft.cpu_limit,
                   "memory_request": draft.memory_request, "memory_limit": draft.memory_limit},
        env=draft.env,
        args=draft.args,
        canary=({"version_id": 12, "version": 2, "storage_uri": canary_uri, "traffic_percent": 10}
                if combo["canary"] else None),
        logging={"mode": "all", "url": "https://console.example.com/ingest/kserve/k3y/"} if combo["logging"] else None,
    )
    if capabilities is not None:
        # What draft_from_endpoint gives the declared-fields rule: the plain render's spec.
        try:
            draft.manifest_spec = reconcile.render({**spec, "generation": 0})["spec"]
        except (ValueError, KeyError, TypeError):
            draft.manifest_spec = None
    return draft, spec


def _is_valid(draft: EndpointDraft) -> bool:
    from django.core.exceptions import ValidationError

    try:
        validate_endpoint(draft)
    except ValidationError:
        return False
    return True


ALL_COMBINATIONS = [dict(zip(MATRIX_AXES, values, strict=True)) for values in itertools.product(*MATRIX_AXES.values())]
VALID = []
for _combo in ALL_COMBINATIONS:
    _draft, _spec = _combination_to_draft_and_spec(_combo)
    if _is_valid(_draft):
        VALID.append((_combo, _spec))


def _combo_id(combo: dict) -> str:
    flags = [k for k in ("gpu", "canary", "scale_to_zero", "logging", "explicit_runtime") if combo[k]]
    return "-".join([combo["format"], combo["protocol"], combo["mode"], *flags])


def test_the_matrix_covers_every_format_protocol_and_mode_that_validation_allows():
    assert len(ALL_COMBINATIONS) == 6 * 3 * 2 * 2 * 2 * 2 * 2 * 2
    seen = {(c["format"], c["protocol"], c["mode"]) for c, _ in VALID}
    expected = {
        (fmt, protocol, mode)
        for fmt in ("sklearn", "xgboost", "tensorflow", "pytorch")
        for protocol in ("v1", "v2")
        for mode in ("Knative", "Standard")
    } | {("huggingface", p, m) for p in ("v1", "v2", "openai") for m in ("Knative", "Standard")} | {
        ("vLLM", "openai", m) for m in ("Knative", "Standard")
    }
    assert seen == expected
    # Validation removed what KServe cannot do: no Standard canary, no Standard scale-to-zero.
    assert not [c for c, _ in VALID if c["mode"] == "Standard" and (c["canary"] or c["scale_to_zero"])]
    assert len(VALID) > 400


@pytest.fixture(scope="module")
def isvc_schema():
    return isvc_validator(strict_metadata=True)


@pytest.mark.shared
@pytest.mark.parametrize(("combo", "spec"), VALID, ids=[_combo_id(c) for c, _ in VALID])
def test_every_valid_combination_renders_a_manifest_the_strict_crd_schema_accepts(combo, spec, isvc_schema):
    manifest = reconcile.render(spec)
    assert schema_errors(isvc_schema, manifest) == []
    predictor = manifest["spec"]["predictor"]
    assert manifest["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == combo["mode"]
    assert predictor["maxReplicas"] == 3
    assert predictor["minReplicas"] == (0 if combo["scale_to_zero"] else 1)
    assert "status" not in manifest and "finalizers" not in manifest["metadata"]
    assert "name" not in predictor["model"]
    assert not set(predictor) & {"sklearn", "xgboost", "tensorflow", "pytorch", "huggingface", "triton", "onnx"}
    assert predictor["model"].get("protocolVersion") != "openai"
    if combo["mode"] == "Standard":
        assert "containerConcurrency" not in predictor and "canaryTrafficPercent" not in predictor
    if combo["gpu"]:
        assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    else:
        assert "nvidia.com/gpu" not in json.dumps(predictor)
    model = predictor["model"]
    if "runtime" not in model:
        # What KServe will auto-select from the written manifest is the runtime validation checked.
        expected, _ = runtimes.resolve_auto_runtime(spec["model"]["format"], spec["model"]["format_version"] or None,
                                                    combo["protocol"], BUILT_IN)
        chosen = runtimes.select_runtime(model["modelFormat"]["name"], model["modelFormat"].get("version"),
                                         model.get("protocolVersion"), BUILT_IN)
        assert chosen == expected
    if combo["format"] in ("vLLM", "huggingface") and combo["protocol"] == "openai":
        # What KServe's webhook would write for vLLM; the HF server's first declared protocol.
        assert model["protocolVersion"] == "v2"
    # Deterministic: rendering again gives byte-identical canonical YAML.
    assert reconcile.canonical_yaml(reconcile.render(copy.deepcopy(spec))) == reconcile.canonical_yaml(manifest)


# --- specific rules --------------------------------------------------------------------------


def test_metadata_labels_and_annotations():
    manifest = reconcile.render(make_spec(generation=7))
    meta = manifest["metadata"]
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    assert (meta["name"], meta["namespace"]) == ("iris", "team-a")
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "inference-console",
        "inference-console.io/instance": "console-test",
        "inference-console.io/project": "team-a",
        "inference-console.io/endpoint-id": "42",
    }
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert meta["annotations"]["inference-console.io/generation"] == "7"
    assert meta["annotations"]["inference-console.io/model-version"] == "iris:1"
    assert meta["annotations"]["inference-console.io/spec-hash"] == reconcile.spec_hash(manifest)
    # The webhook adds modelFormat itself; writing it would only contend for ownership.
    assert "modelFormat" not in meta["annotations"]
    assert "serving.kserve.io/stop" not in meta["annotations"]


def test_standard_mode_is_written_with_the_current_spelling():
    annotations = reconcile.render(make_spec(deployment_mode="Standard"))["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert "RawDeployment" not in json.dumps(annotations)


def test_max_replicas_is_always_set_even_when_equal_to_min():
    predictor = reconcile.render(make_spec(deployment_mode="Standard", min_replicas=2, max_replicas=2))["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 2)


def test_model_section():
    manifest = reconcile.render(make_spec(
        runtime={"name": "kserve-sklearnserver", "openai_compatible": False, "id": 9},
        resources={"cpu_request": "500m", "cpu_limit": "1", "memory_request": "1Gi", "memory_limit": ""},
        env=[{"name": "A", "value": "1"}], args=["--workers=2"],
    ))
    assert manifest["spec"]["predictor"]["model"] == {
        "modelFormat": {"name": "sklearn", "version": "1"},
        "runtime": "kserve-sklearnserver",
        "storageUri": "s3://models/iris/1",
        "protocolVersion": "v1",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}},
        "env": [{"name": "A", "value": "1"}],
        "args": ["--workers=2"],
    }


def test_auto_selection_omits_runtime_and_empty_parts():
    model = reconcile.render(make_spec(kserve_protocol=None, model={**make_spec()["model"], "format_version": ""}))[
        "spec"]["predictor"]["model"]
    assert model == {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/iris/1"}


def test_gpu_goes_into_limits_and_requests_with_placement():
    predictor = reconcile.render(make_spec(hardware={**GPU_PROFILE, "accelerator_count": 2, "profile_id": 1}))[
        "spec"]["predictor"]
    resources = predictor["model"]["resources"]
    # KServe detects GPUs from limits only; the request must equal the limit for extended resources.
    assert resources["limits"]["nvidia.com/gpu"] == "2" and resources["requests"]["nvidia.com/gpu"] == "2"
    assert predictor["nodeSelector"] == GPU_PROFILE["node_selector"]
    assert predictor["tolerations"] == GPU_PROFILE["tolerations"]


def test_a_profile_with_zero_accelerators_adds_placement_only():
    predictor = reconcile.render(make_spec(hardware={**GPU_PROFILE, "accelerator_count": 0}))["spec"]["predictor"]
    assert "resources" not in predictor["model"]
    assert predictor["nodeSelector"]


def test_logger_uses_the_canonical_header_spelling_and_the_model_version_annotation():
    logger = reconcile.render(make_spec(logging={"mode": "request", "url": "https://c.example.com/ingest/k/"}))[
        "spec"]["predictor"]["logger"]
    assert logger == {
        "mode": "request",
        "url": "https://c.example.com/ingest/k/",
        "metadataHeaders": ["X-Console-Principal"],
        "metadataAnnotations": ["inference-console.io/model-version"],
    }
    assert "x-console-principal" not in logger["metadataHeaders"]


def test_knative_canary_applies_the_canary_uri_and_percent():
    manifest = reconcile.render(make_spec(canary={"version_id": 12, "version": 2, "storage_uri": "s3://models/iris/2",
                                                  "traffic_percent": 10}))
    predictor = manifest["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["storageUri"] == "s3://models/iris/2"
    assert manifest["metadata"]["annotations"]["inference-console.io/model-version"] == "iris:2"


def test_rollback_pin_keeps_a_zero_percent_canary():
    manifest = reconcile.render(make_spec(canary={"version_id": 12, "version": 2, "storage_uri": "s3://models/iris/2",
                                                  "traffic_percent": 0}))
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_standard_mode_canary_is_refused():
    with pytest.raises(ValueError, match="Gateway API"):
        reconcile.render(make_spec(deployment_mode="Standard", canary={"version_id": 12, "version": 2,
                                                                         "storage_uri": "s3://x/2", "traffic_percent": 5}))


def test_standard_mode_scale_to_zero_is_refused():
    with pytest.raises(ValueError, match="Knative"):
        reconcile.render(make_spec(deployment_mode="Standard", min_replicas=0))


def test_container_concurrency_only_in_knative_mode():
    assert reconcile.render(make_spec(container_concurrency=4))["spec"]["predictor"]["containerConcurrency"] == 4
    standard = reconcile.render(make_spec(deployment_mode="Standard", container_concurrency=4))
    assert "containerConcurrency" not in standard["spec"]["predictor"]


def test_scale_metric_and_target():
    predictor = reconcile.render(make_spec(deployment_mode="Standard", scale_metric="cpu", scale_target=70))[
        "spec"]["predictor"]
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 70)
    assert "scaleMetric" not in reconcile.render(make_spec())["spec"]["predictor"]


def test_stop_annotation_only_when_stopped():
    annotations = reconcile.render(make_spec(stopped=True))["metadata"]["annotations"]
    assert annotations["serving.kserve.io/stop"] == "true"


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
@pytest.mark.parametrize("task", ["llm-chat", "llm-completion", "embedding"])
def test_llm_endpoints_get_a_long_timeout_by_default(mode, task):
    model = {**make_spec()["model"], "format": "huggingface", "format_version": "", "task": task}
    predictor = reconcile.render(make_spec(deployment_mode=mode, model=model))["spec"]["predictor"]
    assert predictor["timeout"] == reconcile.LLM_DEFAULT_TIMEOUT_SECONDS == 600


def test_explicit_timeout_wins_and_classic_models_keep_kserve_defaults():
    assert reconcile.render(make_spec(timeout_seconds=30))["spec"]["predictor"]["timeout"] == 30
    assert "timeout" not in reconcile.render(make_spec())["spec"]["predictor"]


def test_env_entries_carry_only_name_and_value():
    env = reconcile.render(make_spec(env=[{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {}}}]))[
        "spec"]["predictor"]["model"]["env"]
    assert env == [{"name": "A", "value": "1"}]


# --- determinism and hashing ---------------------------------------------------------------


def test_same_spec_gives_byte_identical_yaml_whatever_the_key_order():
    spec = make_spec(env=[{"name": "B", "value": "2"}], hardware={**GPU_PROFILE, "accelerator_count": 1})
    shuffled = json.loads(json.dumps(spec, sort_keys=True))
    shuffled = dict(reversed(list(shuffled.items())))
    assert reconcile.canonical_yaml(reconcile.render(spec)) == reconcile.canonical_yaml(reconcile.render(shuffled))


def test_spec_hash_ignores_metadata_and_changes_with_the_spec():
    one = reconcile.render(make_spec(generation=1))
    two = reconcile.render(make_spec(generation=2))
    assert reconcile.spec_hash(one) == reconcile.spec_hash(two)
    changed = reconcile.render(make_spec(max_replicas=4))
    assert reconcile.spec_hash(changed) != reconcile.spec_hash(one)
    assert len(reconcile.spec_hash(one)) == 64


def test_render_does_not_mutate_the_spec():
    spec = make_spec(hardware={**GPU_PROFILE, "accelerator_count": 1}, env=[{"name": "A", "value": "1"}])
    before = copy.deepcopy(spec)
    manifest = reconcile.render(spec)
    manifest["spec"]["predictor"]["tolerations"].append({"key": "x"})
    assert spec == before


# --- owned fields and drift ----------------------------------------------------------------


def _live_version_of(manifest: dict) -> dict:
    """What the API server returns after KServe's webhook and controller touched the object."""
    live = copy.deepcopy(manifest)
    live["metadata"].update({"uid": "u-1", "resourceVersion": "17", "generation": 3,
                             "finalizers": ["inferenceservice.finalizers"]})
    live["metadata"]["annotations"]["modelFormat"] = "sklearn"
    live["spec"]["predictor"]["model"]["env"] = list(live["spec"]["predictor"]["model"].get("env", []))
    live["status"] = {"url": "http://iris.team-a.example.com", "conditions": [{"type": "Ready", "status": "True"}]}
    return live


def test_managed_field_paths_escape_dots_in_keys():
    manifest = reconcile.render(make_spec(hardware={**GPU_PROFILE, "accelerator_count": 1}))
    paths = reconcile.managed_field_paths(manifest)
    assert r"metadata.annotations.serving\.kserve\.io/deploymentMode" in paths
    assert r"spec.predictor.model.resources.limits.nvidia\.com/gpu" in paths
    assert "spec.predictor.tolerations" in paths  # lists are owned whole
    assert "status" not in " ".join(paths)
    for path in paths:
        assert reconcile.join_path(reconcile.split_path(path)) == path


def test_desired_subset_of_an_untouched_live_object_equals_the_manifest():
    manifest = reconcile.render(make_spec(logging={"mode": "all", "url": "https://c/ingest/"}))
    live = _live_version_of(manifest)
    assert reconcile.desired_subset(live, manifest) == manifest
    assert reconcile.drifted_paths(live, manifest) == []


def test_out_of_band_edits_show_up_as_drift():
    manifest = reconcile.render(make_spec())
    live = _live_version_of(manifest)
    live["spec"]["predictor"]["minReplicas"] = 5
    del live["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    assert reconcile.drifted_paths(live, manifest) == [
        r"metadata.labels.app\.kubernetes\.io/managed-by",
        "spec.predictor.minReplicas",
    ]
    subset = reconcile.desired_subset(live, manifest)
    assert subset["spec"]["predictor"]["minReplicas"] == 5
    assert "app.kubernetes.io/managed-by" not in subset["metadata"]["labels"]


def test_fields_added_by_others_are_not_drift():
    manifest = reconcile.render(make_spec())
    live = _live_version_of(manifest)
    live["spec"]["predictor"]["serviceAccountName"] = "someone-elses"
    assert reconcile.drifted_paths(live, manifest) == []


# --- through the fake API server -------------------------------------------------------------


def _sample_of_valid_specs() -> list[tuple[dict, dict]]:
    """One combination per (format, protocol, mode), the richest one of each."""
    picked: dict[tuple, tuple[dict, dict]] = {}
    for combo, spec in VALID:
        key = (combo["format"], combo["protocol"], combo["mode"])
        richness = sum(bool(combo[k]) for k in ("gpu", "canary", "logging", "scale_to_zero", "explicit_runtime"))
        if key not in picked or richness > sum(
            bool(picked[key][0][k]) for k in ("gpu", "canary", "logging", "scale_to_zero", "explicit_runtime")
        ):
            picked[key] = (combo, spec)
    return list(picked.values())


@pytest.mark.shared
def test_rendered_manifests_apply_cleanly_through_the_fake_api_server_with_kserve_crds(fake_apiserver_with_crds):
    from endpoints.cluster import ClusterClient

    client = ClusterClient.for_url(fake_apiserver_with_crds.url, timeout=5.0)
    try:
        client.ensure_namespace("team-a")
        samples = _sample_of_valid_specs()
        assert len(samples) == 24  # (format, protocol, mode) triples validation allows
        for index, (combo, spec) in enumerate(samples):
            spec = {**spec, "name": f"ep-{index}", "endpoint_id": 100 + index}
            manifest = reconcile.render(spec)
            stored = client.apply(manifest)  # server-side apply, strict field validation
            assert reconcile.drifted_paths(stored, manifest) == [], _combo_id(combo)
            # Applying the same manifest again changes nothing the console owns.
            again = client.apply(manifest)
            assert again["metadata"]["generation"] == stored["metadata"]["generation"], _combo_id(combo)
        listed, _ = client.list("team-a", label_selector="app.kubernetes.io/managed-by=inference-console")
        assert sorted(item["metadata"]["name"] for item in listed) == sorted(f"ep-{i}" for i in range(len(samples)))
        # The owned-field comparison the periodic reconcile relies on holds for listed objects too.
        for item in listed:
            index = int(item["metadata"]["name"].split("-")[1])
            spec = {**samples[index][1], "name": item["metadata"]["name"], "endpoint_id": 100 + index}
            assert reconcile.desired_subset(item, reconcile.render(spec)) == reconcile.render(spec)
    finally:
        client.close()
