"""Endpoint rules from the careless user's and the attacker's side: each broken rule must be
reported on the field the user has to change, with a message that says how to fix it, and
every broken rule must be reported at once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from endpoints import catalog
from endpoints.catalog import RuntimeSpec, SupportedFormat
from endpoints.validation import EndpointDraft, HardwareLimits, storage_uri_errors, validate_endpoint

BUILT_IN = catalog.BUILT_IN_RUNTIMES
GPU = HardwareLimits(name="a100", accelerator_resource="nvidia.com/gpu", max_accelerators_per_replica=4,
                     max_cpu="32", max_memory="256Gi")
CPU_ONLY = HardwareLimits(name="cpu-small", max_cpu="4", max_memory="16Gi")


def make(**overrides) -> EndpointDraft:
    """A valid sklearn endpoint; each test breaks one thing."""
    fields = {
        "name": "iris",
        "namespace": "team-a",
        "model_format": "sklearn",
        "model_format_version": "1",
        "storage_uri": "s3://models/iris/1",
        "model_task": "classification",
        "available_runtimes": BUILT_IN,
        "primary_model_id": 7,
        "logging_mode": "all",
    }
    fields.update(overrides)
    return EndpointDraft(**fields)


def errors_of(draft: EndpointDraft) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        validate_endpoint(draft)
    return info.value.message_dict


def only_error(draft: EndpointDraft, field: str) -> str:
    """The draft breaks exactly one field; return that field's joined messages."""
    errors = errors_of(draft)
    assert list(errors) == [field], errors
    return " ".join(errors[field])


# --- valid drafts ------------------------------------------------------------------------


def test_valid_sklearn_draft_passes():
    validate_endpoint(make())


def test_valid_llm_drafts_pass():
    validate_endpoint(make(
        name="chat", model_format="huggingface", model_format_version="", storage_uri="hf://meta-llama/Llama-3.1-8B",
        model_task="llm-chat", protocol="openai", hardware=GPU, accelerator_count=1, cpu_request="4", cpu_limit="8",
        memory_request="24Gi", memory_limit="32Gi", min_replicas=0, max_replicas=2, scale_metric="concurrency",
        scale_target=4, timeout_seconds=900,
    ))
    validate_endpoint(make(
        name="vllm-chat", model_format="vLLM", model_format_version="", storage_uri="pvc://models/llama",
        model_task="llm-completion", protocol="openai", runtime=catalog.by_name("kserve-vllmserver"),
        hardware=GPU, accelerator_count=2, deployment_mode="Standard", scale_metric="cpu", scale_target=70,
    ))


def test_valid_standard_mode_draft_with_everything_set_passes():
    validate_endpoint(make(
        deployment_mode="Standard", previous_deployment_mode="Standard", min_replicas=2, max_replicas=5,
        scale_metric="memory", scale_target=80, timeout_seconds=120, hardware=CPU_ONLY, cpu_request="500m",
        cpu_limit="2", memory_request="1Gi", memory_limit="4Gi", env=[{"name": "LOG_LEVEL", "value": "debug"}],
        args=["--workers=2"], logging_mode="off", protocol="v2", runtime=catalog.by_name("kserve-mlserver"),
    ))


def test_valid_knative_canary_passes():
    validate_endpoint(make(canary_version_model_id=7, canary_storage_uri="s3://models/iris/2", canary_traffic_percent=10))
    validate_endpoint(make(canary_version_model_id=7, canary_storage_uri="s3://models/iris/2", canary_traffic_percent=0))


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Iris", "iris_v2", "2iris", "iris-", "-iris", "iris.v2", "iris v2", "irís"])
def test_invalid_names_are_refused(name):
    message = only_error(make(name=name), "name")
    assert "lowercase letters, digits and '-'" in message and "start with a letter" in message


def test_46_character_name_is_refused_with_the_reason():
    message = only_error(make(name="a" * 46, namespace="ns"), "name")
    assert "45" in message and "63-character DNS labels" in message


def test_45_character_name_in_a_short_namespace_passes():
    validate_endpoint(make(name="a" * 45, namespace="ns"))


def test_name_plus_namespace_of_51_is_refused():
    message = only_error(make(name="a" * 30, namespace="n" * 21), "name")
    assert "51 characters" in message and "<name>-predictor-<namespace>" in message and "63" in message


def test_name_plus_namespace_of_50_passes():
    validate_endpoint(make(name="a" * 30, namespace="n" * 20))


def test_empty_name_is_refused():
    assert "required" in only_error(make(name=""), "name")


# --- storage -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["file:///etc/passwd", "http://models.example.com/iris.pkl", "/etc/passwd", "ftp://host/m", "hdfs://nn/m",
     "oci+native://registry/model:1", "javascript:alert(1)"],
)
def test_disallowed_storage_schemes_are_refused_naming_the_allowed_ones(uri):
    message = only_error(make(storage_uri=uri), "model_version")
    assert "s3://, gs://, https://, pvc://, hf://, oci://" in message


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/iris", "gs://bucket/iris", "https://acct.blob.core.windows.net/c/iris", "pvc://models/iris",
     "hf://meta-llama/Llama-3.1-8B", "oci://registry.example.com/models/iris:1"],
)
def test_allowed_storage_schemes_pass(uri):
    assert storage_uri_errors(uri) == []


@pytest.mark.parametrize("uri", ["s3://", "gs:///", "pvc://", "oci://"])
def test_a_scheme_alone_is_refused(uri):
    assert "nothing after" in only_error(make(storage_uri=uri), "model_version")


def test_uppercase_scheme_is_refused_with_the_lowercase_spelling():
    assert "lowercase (s3://)" in only_error(make(storage_uri="S3://bucket/iris"), "model_version")


def test_uri_with_spaces_or_newlines_is_refused():
    assert "spaces or control characters" in only_error(make(storage_uri="s3://bucket/iris\n--x"), "model_version")


def test_hf_uri_needs_owner_and_model():
    assert "hf://<owner>/<model>" in " ".join(storage_uri_errors("hf://llama"))


def test_https_uri_needs_a_host():
    assert "host" in " ".join(storage_uri_errors("https:///path"))


# --- replicas and scaling ---------------------------------------------------------------


def test_scale_to_zero_in_standard_mode_is_refused_explaining_the_hpa():
    message = only_error(make(deployment_mode="Standard", min_replicas=0), "min_replicas")
    assert "Scale-to-zero needs Knative" in message and "HPA forces at least 1" in message


def test_scale_to_zero_in_knative_mode_passes():
    validate_endpoint(make(min_replicas=0, max_replicas=3))


def test_min_above_max_is_refused():
    assert "cannot exceed maximum" in only_error(make(min_replicas=3, max_replicas=2), "min_replicas")


def test_max_replicas_zero_is_refused():
    assert "at least 1" in only_error(make(min_replicas=0, max_replicas=0), "max_replicas")


def test_negative_min_replicas_is_refused():
    assert "0 or more" in " ".join(errors_of(make(min_replicas=-1))["min_replicas"])


@pytest.mark.parametrize(("mode", "metric"), [("Knative", "cpu"), ("Knative", "memory"), ("Standard", "concurrency"),
                                              ("Standard", "rps")])
def test_scale_metric_must_fit_the_mode(mode, metric):
    message = only_error(make(deployment_mode=mode, scale_metric=metric, scale_target=50), "scale_metric")
    assert f"{mode} mode scales on" in message and "KServe rejects" in message


def test_unknown_scale_metric_is_refused():
    assert "Unknown scale metric" in only_error(make(scale_metric="gpu", scale_target=5), "scale_metric")


def test_scale_metric_needs_a_target():
    assert "Set a target" in only_error(make(scale_metric="concurrency"), "scale_target")


def test_scale_target_needs_a_metric():
    assert "needs a scale metric" in only_error(make(scale_target=10), "scale_target")


def test_cpu_target_is_a_percentage():
    message = only_error(make(deployment_mode="Standard", scale_metric="cpu", scale_target=150), "scale_target")
    assert "1 to 100" in message


def test_zero_scale_target_is_refused():
    assert "at least 1" in only_error(make(scale_metric="rps", scale_target=0), "scale_target")


def test_container_concurrency_is_refused_in_standard_mode():
    message = only_error(make(deployment_mode="Standard", container_concurrency=4), "container_concurrency")
    assert "queue-proxy" in message and "Knative" in message


def test_container_concurrency_bounds():
    validate_endpoint(make(container_concurrency=0))
    assert "0 (unlimited) to 1000" in only_error(make(container_concurrency=1001), "container_concurrency")


@pytest.mark.parametrize("timeout", [0, -5, 3601])
def test_timeout_bounds(timeout):
    assert "1 to 3600 seconds" in only_error(make(timeout_seconds=timeout), "timeout_seconds")


# --- accelerators and quota ----------------------------------------------------------------


def test_99_gpus_are_refused_naming_the_profile_limit():
    message = only_error(make(hardware=GPU, accelerator_count=99), "accelerator_count")
    assert "99 accelerators per replica exceeds the 4" in message and "a100" in message


def test_gpus_on_a_cpu_only_profile_are_refused():
    assert "CPU only" in only_error(make(hardware=CPU_ONLY, accelerator_count=1), "accelerator_count")


def test_gpus_without_a_profile_are_refused():
    assert "hardware profile" in only_error(make(accelerator_count=1), "accelerator_count")


def test_quota_exceeded_is_reported_on_the_accelerator_count():
    draft = make(hardware=GPU, accelerator_count=2, max_replicas=3, quota_remaining=4, accelerators_requested_at_max=6)
    message = only_error(draft, "accelerator_count")
    assert "6 accelerators" in message and "leaves 4" in message


def test_quota_defaults_to_count_times_max_replicas():
    message = only_error(make(hardware=GPU, accelerator_count=2, max_replicas=3, quota_remaining=5), "accelerator_count")
    assert "6 accelerators" in message
    validate_endpoint(make(hardware=GPU, accelerator_count=2, max_replicas=3, quota_remaining=6))


def test_no_quota_means_no_limit():
    validate_endpoint(make(hardware=GPU, accelerator_count=4, max_replicas=50, quota_remaining=None))


# --- cpu and memory ------------------------------------------------------------------------


def test_invalid_quantity_is_refused_on_its_field():
    assert "not a valid resource quantity" in only_error(make(cpu_limit="2 cores"), "cpu_limit")


def test_request_above_limit_is_refused():
    message = only_error(make(cpu_request="2", cpu_limit="500m"), "cpu_request")
    assert "cannot exceed the limit" in message
    assert "cannot exceed" in only_error(make(memory_request="4Gi", memory_limit="2Gi"), "memory_request")


def test_values_above_the_profile_maximum_are_refused():
    errors = errors_of(make(hardware=CPU_ONLY, cpu_request="8", cpu_limit="8", memory_limit="32Gi", memory_request="1Gi"))
    assert set(errors) == {"cpu_request", "cpu_limit", "memory_limit"}
    assert "exceeds the 4 that hardware profile cpu-small allows" in errors["cpu_limit"][0]


def test_memory_in_millibytes_is_refused_with_a_hint():
    message = only_error(make(memory_request="512m", memory_limit="1Gi"), "memory_request")
    assert "did you mean 512Mi" in message


def test_zero_or_negative_resources_are_refused():
    assert "more than 0" in only_error(make(cpu_request="0", cpu_limit="1"), "cpu_request")
    assert "more than 0" in only_error(make(memory_limit="-1Gi"), "memory_limit")


def test_cpu_finer_than_a_millicore_is_refused():
    assert "1m" in only_error(make(cpu_request="0.0001", cpu_limit="1"), "cpu_request")


def test_a_lone_request_above_the_runtime_default_limit_needs_a_limit():
    # kserve-sklearnserver's container has cpu limit 1; the model's request merges over it.
    message = only_error(make(cpu_request="4"), "cpu_limit")
    assert "default cpu limit of 1" in message and "kserve-sklearnserver" in message


def test_a_lone_limit_below_the_runtime_default_request_needs_a_request():
    message = only_error(make(memory_limit="1Gi"), "memory_request")
    assert "2Gi" in message


# --- env and args ------------------------------------------------------------------------


def test_pythonpath_is_refused_because_kserve_rejects_it():
    message = only_error(make(env=[{"name": "PYTHONPATH", "value": "/tmp/evil"}]), "env")
    assert "PYTHONPATH cannot be set" in message and "KServe" in message


def test_openai_route_prefix_env_is_refused():
    assert "/openai" in only_error(make(env=[{"name": "KSERVE_OPENAI_ROUTE_PREFIX", "value": ""}]), "env")


@pytest.mark.parametrize("name", ["1ABC", "MY-VAR", "A B", "", "A=B", None])
def test_env_names_must_be_c_identifiers(name):
    assert "not a valid variable name" in only_error(make(env=[{"name": name, "value": "x"}]), "env")


def test_duplicate_env_names_are_refused():
    env = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    assert "A is set more than once" in only_error(make(env=env), "env")


def test_env_entries_cannot_smuggle_value_from():
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "other-team", "key": "token"}}}]
    assert "exactly a name and a value" in only_error(make(env=env), "env")


def test_env_values_must_be_strings():
    assert "must be a string" in only_error(make(env=[{"name": "N", "value": 3}]), "env")


@pytest.mark.parametrize("arg", ["--model_name=other", "--model_name", "--model-name=x", "--served-model-name=x",
                                 "--served_model_name", "-model_name=x"])
def test_args_renaming_the_served_model_are_refused(arg):
    message = only_error(make(args=[arg]), "args")
    assert "renames the served model" in message


def test_args_must_be_strings():
    assert "must be a string, not int" in only_error(make(args=["--workers", 2]), "args")


def test_args_must_be_a_list():
    assert "list of strings" in only_error(make(args="--workers=2"), "args")


def test_value_equal_to_the_flag_name_is_not_a_flag():
    validate_endpoint(make(args=["--log-prefix", "model_name"]))


# --- runtime and protocol ----------------------------------------------------------------


def test_mismatched_explicit_runtime_is_refused():
    draft = make(model_format="xgboost", model_format_version="2", runtime=catalog.by_name("kserve-sklearnserver"))
    message = only_error(draft, "runtime")
    assert "does not support format xgboost version 2" in message and "sklearn version 1" in message


def test_explicit_runtime_without_the_protocol_is_refused():
    message = only_error(make(runtime=catalog.by_name("kserve-mlserver"), protocol="v1"), "runtime")
    assert "does not support protocol v1" in message


def test_version_with_no_exact_match_explains_the_string_rule():
    message = only_error(make(model_format_version="1.3"), "runtime")
    assert "'sklearn' version '1.3'" in message and "exact strings" in message and "'1'" in message


def test_unknown_format_has_no_runtime():
    message = only_error(make(model_format="keras", model_format_version=""), "runtime")
    assert "No runtime would be auto-selected for format 'keras' with protocol v1" in message


def test_disabled_explicit_runtime_is_refused():
    off = RuntimeSpec(name="old", display_name="old", formats=(SupportedFormat("sklearn", "1", True, 1),),
                      protocols=("v1",), disabled=True)
    assert "disabled" in only_error(make(runtime=off), "runtime")


def test_multinode_runtime_is_refused_as_an_explicit_choice():
    draft = make(model_format="huggingface", model_format_version="", model_task="llm-chat", protocol="openai",
                 runtime=catalog.by_name("kserve-huggingfaceserver-multinode"))
    assert "workerSpec" in only_error(draft, "runtime")


def test_openai_on_a_non_openai_runtime_is_refused_as_a_capability_not_a_protocol_version():
    message = only_error(make(protocol="openai", model_task="llm-chat", runtime=catalog.by_name("kserve-sklearnserver")),
                         "protocol")
    assert "never a protocolVersion value" in message and "kserve-sklearnserver" in message


def test_openai_with_auto_selection_of_a_classic_runtime_is_refused():
    message = only_error(make(protocol="openai", model_task="llm-chat"), "protocol")
    assert "does not serve the OpenAI-compatible API" in message


def test_openai_for_a_classifier_is_refused():
    draft = make(model_format="huggingface", model_format_version="", protocol="openai", model_task="classification")
    assert "V1/V2 predict" in only_error(draft, "protocol")


def test_vllm_runtime_serves_only_openai():
    draft = make(model_format="vLLM", model_format_version="", storage_uri="hf://org/m", model_task="llm-chat",
                 protocol="v2")
    message = only_error(draft, "protocol")
    assert "kserve-vllmserver serves only the OpenAI-compatible API" in message


def test_generative_model_on_the_hugging_face_server_needs_openai():
    draft = make(model_format="huggingface", model_format_version="", storage_uri="hf://org/m", model_task="llm-chat",
                 protocol="v1")
    assert "choose protocol openai" in only_error(draft, "protocol")


def test_encoder_model_on_the_hugging_face_server_may_use_v2():
    validate_endpoint(make(model_format="huggingface", model_format_version="", storage_uri="hf://org/bert",
                           model_task="classification", protocol="v2"))


def test_unknown_protocol_is_refused():
    assert "v1, v2, openai" in only_error(make(protocol="grpc-v2"), "protocol")


# --- canary --------------------------------------------------------------------------------


def test_canary_in_standard_mode_is_refused():
    draft = make(deployment_mode="Standard", canary_version_model_id=7, canary_storage_uri="s3://models/iris/2",
                 canary_traffic_percent=10)
    message = only_error(draft, "canary_version")
    assert "Standard-mode canaries need Gateway API, not supported yet" in message


def test_canary_from_another_model_is_refused():
    draft = make(canary_version_model_id=99, canary_storage_uri="s3://models/other/1", canary_traffic_percent=10)
    assert "same registered model" in only_error(draft, "canary_version")


def test_canary_with_the_same_artifact_is_refused():
    draft = make(canary_version_model_id=7, canary_storage_uri="s3://models/iris/1", canary_traffic_percent=10)
    assert "same URI" in only_error(draft, "canary_version")


def test_canary_with_a_disallowed_uri_is_refused():
    draft = make(canary_version_model_id=7, canary_storage_uri="file:///etc/shadow", canary_traffic_percent=10)
    assert "Canary version:" in only_error(draft, "canary_version")


@pytest.mark.parametrize("percent", [101, -1])
def test_canary_traffic_bounds(percent):
    draft = make(canary_version_model_id=7, canary_storage_uri="s3://models/iris/2", canary_traffic_percent=percent)
    assert "0 to 100" in only_error(draft, "canary_traffic_percent")


def test_canary_needs_both_version_and_percent():
    assert "Choose the model version" in only_error(make(canary_traffic_percent=10), "canary_version")
    draft = make(canary_version_model_id=7, canary_storage_uri="s3://models/iris/2")
    assert "Set the share" in only_error(draft, "canary_traffic_percent")


# --- deployment mode, logging --------------------------------------------------------------


def test_changing_the_deployment_mode_after_apply_is_refused():
    message = only_error(make(deployment_mode="Standard", previous_deployment_mode="Knative"), "deployment_mode")
    assert "Delete the endpoint and create it again" in message and "Knative" in message


def test_the_mode_may_be_chosen_freely_before_the_first_apply():
    validate_endpoint(make(deployment_mode="Standard", previous_deployment_mode=None))


@pytest.mark.parametrize(("legacy", "current"), [("Serverless", "Knative"), ("RawDeployment", "Standard")])
def test_legacy_mode_spellings_are_refused_with_the_current_one(legacy, current):
    assert f"use {current!r}" in only_error(make(deployment_mode=legacy), "deployment_mode")


def test_unknown_logging_mode_is_refused():
    assert "off, all, request, response" in only_error(make(logging_mode="verbose"), "logging_mode")


# --- all at once ---------------------------------------------------------------------------


def test_all_broken_rules_are_reported_together():
    draft = make(
        name="Bad_Name", deployment_mode="Standard", previous_deployment_mode="Knative", storage_uri="file:///x",
        min_replicas=0, hardware=GPU, accelerator_count=99, env=[{"name": "PYTHONPATH", "value": "x"}],
        args=["--model_name=x"], logging_mode="loud", timeout_seconds=0,
        canary_version_model_id=1, canary_storage_uri="s3://other/1", canary_traffic_percent=200,
    )
    errors = errors_of(draft)
    assert {"name", "deployment_mode", "model_version", "min_replicas", "accelerator_count", "env", "args",
            "logging_mode", "timeout_seconds", "canary_version", "canary_traffic_percent"} <= set(errors)
    assert len(errors["canary_version"]) == 2  # Standard mode and another model


# --- adapter from the model instance -------------------------------------------------------


def test_draft_from_endpoint_reads_the_instance_without_queries():
    from endpoints.validation import draft_from_endpoint

    model = SimpleNamespace(task="llm-chat")
    version = SimpleNamespace(model_format="huggingface", format_version="", storage_uri="hf://org/m", model=model,
                              model_id=3)
    canary = SimpleNamespace(model_id=3, storage_uri="hf://org/m2")
    runtime_row = SimpleNamespace(name="kserve-huggingfaceserver", display_name="HF", description="",
                                  supported_formats=[{"name": "huggingface", "version": "1", "autoSelect": True,
                                                      "priority": 1}],
                                  protocols=["v2", "v1"], openai_compatible=True, openai_route_prefix="/openai",
                                  disabled=False, multi_model=False, built_in=True, created_at=None)
    profile = SimpleNamespace(name="a100", accelerator_resource="nvidia.com/gpu", max_accelerators_per_replica=2,
                              max_cpu="16", max_memory="64Gi")
    endpoint = SimpleNamespace(
        name="chat", project=SimpleNamespace(namespace="team-a"), deployment_mode="Knative", model_version=version,
        runtime_id=1, runtime=runtime_row, protocol="openai", min_replicas=0, max_replicas=2, scale_metric="",
        scale_target=None, container_concurrency=None, timeout_seconds=None, hardware_profile_id=1,
        hardware_profile=profile, accelerator_count=1, cpu_request="", cpu_limit="", memory_request="",
        memory_limit="", env=[], args=[], canary_version_id=5, canary_version=canary, canary_traffic_percent=20,
        logging_mode="all",
    )
    draft = draft_from_endpoint(endpoint, previous_mode="Knative", available_runtimes=BUILT_IN, quota_remaining=8,
                                accelerators_requested=2)
    assert draft.runtime.name == "kserve-huggingfaceserver" and draft.runtime.openai_compatible
    assert draft.hardware.max_accelerators_per_replica == 2
    assert (draft.primary_model_id, draft.canary_version_model_id) == (3, 3)
    validate_endpoint(draft)
