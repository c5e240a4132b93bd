"""Runtime auto-selection must pick what KServe picks (docs/kserve.md §3), and the console's
protocol choice must map to a protocolVersion KServe keeps as written."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from endpoints import catalog, runtimes
from endpoints.catalog import RuntimeSpec, SupportedFormat

BUILT_IN = catalog.BUILT_IN_RUNTIMES


def _names(found):
    return [r.name for r in found]


def _custom(name, *formats, protocols=("v1", "v2"), **kwargs) -> RuntimeSpec:
    return RuntimeSpec(name=name, display_name=name, formats=tuple(formats), protocols=protocols, **kwargs)


# --- kserve.md's worked examples ---------------------------------------------------------


def test_sklearn_without_protocol_selects_the_sklearn_server_because_mlserver_is_v2_only():
    assert runtimes.select_runtime("sklearn", "", None, BUILT_IN).name == "kserve-sklearnserver"


def test_sklearn_v1_selects_the_sklearn_server():
    assert runtimes.select_runtime("sklearn", "", "v1", BUILT_IN).name == "kserve-sklearnserver"


def test_sklearn_v2_selects_mlserver_because_priority_2_beats_1():
    assert _names(runtimes.supporting_runtimes("sklearn", None, "v2", BUILT_IN)) == [
        "kserve-mlserver",
        "kserve-sklearnserver",
    ]


def test_vllm_format_matches_the_vllm_runtime_with_any_protocol():
    for protocol in (None, "v1", "v2", "grpc-v2"):
        assert runtimes.select_runtime("vLLM", "", protocol, BUILT_IN).name == "kserve-vllmserver"


def test_format_names_are_case_sensitive():
    assert runtimes.select_runtime("vllm", "", None, BUILT_IN) is None


def test_predictiveserver_is_never_auto_selected():
    for fmt in ("sklearn", "xgboost", "lightgbm"):
        for protocol in (None, "v1", "v2"):
            found = runtimes.supporting_runtimes(fmt, None, protocol, BUILT_IN)
            assert "kserve-predictiveserver" not in _names(found), (fmt, protocol)


def test_predictiveserver_is_accepted_when_named_explicitly():
    ok, reason = runtimes.runtime_supports(catalog.by_name("kserve-predictiveserver"), "sklearn", "1", "v1")
    assert ok, reason


def test_version_1_does_not_match_1_3():
    assert runtimes.select_runtime("sklearn", "1.3", None, BUILT_IN) is None
    assert runtimes.select_runtime("sklearn", "1", None, BUILT_IN).name == "kserve-sklearnserver"
    ok, reason = runtimes.runtime_supports(catalog.by_name("kserve-sklearnserver"), "sklearn", "1.3", "v1")
    assert not ok
    assert "exact strings" in reason and '"1" does not match "1.3"' in reason


def test_version_picks_the_runtime_declaring_it():
    # MLServer declares sklearn 0 and 1; the sklearn server only 1.
    assert _names(runtimes.supporting_runtimes("sklearn", "0", "v2", BUILT_IN)) == ["kserve-mlserver"]
    assert runtimes.select_runtime("sklearn", "0", "v1", BUILT_IN) is None


def test_namespace_runtime_beats_a_cluster_runtime_even_with_lower_priority():
    mine = _custom("team-sklearn", SupportedFormat("sklearn", "1", True, 1), namespaced=True)
    pool = [*BUILT_IN, mine]
    assert runtimes.select_runtime("sklearn", "", "v2", pool).name == "team-sklearn"
    assert _names(runtimes.supporting_runtimes("sklearn", "", "v2", pool))[:2] == ["team-sklearn", "kserve-mlserver"]


def test_triton_serves_tensorflow_only_with_v2_and_tf_serving_wins_v1():
    assert runtimes.select_runtime("tensorflow", "", None, BUILT_IN).name == "kserve-tensorflow-serving"
    assert runtimes.select_runtime("tensorflow", "", "v2", BUILT_IN).name == "kserve-tritonserver"


def test_pytorch_is_not_auto_selected_on_triton():
    assert _names(runtimes.supporting_runtimes("pytorch", "", "v2", BUILT_IN)) == ["kserve-torchserve"]
    ok, _ = runtimes.runtime_supports(catalog.by_name("kserve-tritonserver"), "pytorch", "1", "v2")
    assert ok  # explicit choice does not need autoSelect


def test_multinode_runtime_is_picked_only_for_a_multinode_service():
    assert runtimes.select_runtime("huggingface", "", None, BUILT_IN).name == "kserve-huggingfaceserver"
    assert runtimes.select_runtime("huggingface", "", None, BUILT_IN, multinode=True).name == (
        "kserve-huggingfaceserver-multinode"
    )
    ok, reason = runtimes.runtime_supports(catalog.by_name("kserve-huggingfaceserver-multinode"), "huggingface", "", "v2")
    assert not ok and "workerSpec" in reason


# --- ordering rules ------------------------------------------------------------------------


def test_any_priority_beats_no_priority():
    no_priority = _custom("a-none", SupportedFormat("onnx", "1", True, None))
    low = _custom("z-low", SupportedFormat("onnx", "1", True, 1))
    assert _names(runtimes.supporting_runtimes("onnx", "", "v1", [no_priority, low])) == ["z-low", "a-none"]


def test_lowest_protocol_then_newest_then_name():
    fmt = SupportedFormat("onnx", "1", True, 1)
    v2_only = _custom("a-v2", fmt, protocols=("v2",))
    v1 = _custom("b-v1", fmt, protocols=("v2", "v1"))
    any_protocol = _custom("0-any", fmt, protocols=())
    # Empty protocol lists rank after every listed protocol (KServe's "Unknown").
    assert _names(runtimes.supporting_runtimes("onnx", "", "v2", [any_protocol, v2_only, v1])) == [
        "b-v1",
        "a-v2",
        "0-any",
    ]
    old = _custom("a-old", fmt, created_at=datetime(2024, 1, 1, tzinfo=UTC))
    new = _custom("b-new", fmt, created_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert _names(runtimes.supporting_runtimes("onnx", "", "v1", [old, new])) == ["b-new", "a-old"]
    twin = _custom("a-twin", fmt, created_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert _names(runtimes.supporting_runtimes("onnx", "", "v1", [new, twin])) == ["a-twin", "b-new"]


def test_priority_comes_from_the_first_entry_with_the_format_name():
    # KServe's GetPriority ignores the version: the first "onnx" entry's priority counts.
    split = _custom("split", SupportedFormat("onnx", "1", True, 1), SupportedFormat("onnx", "2", True, 9))
    other = _custom("other", SupportedFormat("onnx", "2", True, 5))
    assert _names(runtimes.supporting_runtimes("onnx", "2", "v1", [split, other])) == ["other", "split"]


def test_disabled_and_multi_model_runtimes_are_excluded():
    fmt = SupportedFormat("sklearn", "1", True, 9)
    pool = [*BUILT_IN, _custom("off", fmt, disabled=True), _custom("mm", fmt, multi_model=True)]
    assert runtimes.select_runtime("sklearn", "", "v1", pool).name == "kserve-sklearnserver"
    ok, reason = runtimes.runtime_supports(_custom("off", fmt, disabled=True), "sklearn", "", "v1")
    assert not ok and "disabled" in reason


def test_unset_protocol_counts_as_v1_for_an_explicit_runtime():
    ok, reason = runtimes.runtime_supports(catalog.by_name("kserve-mlserver"), "sklearn", "", None)
    assert not ok and "v1" in reason
    ok, _ = runtimes.runtime_supports(catalog.by_name("kserve-mlserver"), "sklearn", "", "v2")
    assert ok


def test_no_candidate_gives_none():
    assert runtimes.select_runtime("keras", "", None, BUILT_IN) is None
    assert runtimes.supporting_runtimes("mlflow", "", "v1", BUILT_IN) == []


# --- console protocol → protocolVersion ----------------------------------------------------


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_v1_and_v2_are_written_as_is(protocol):
    assert runtimes.kserve_protocol(protocol, None) == protocol
    assert runtimes.kserve_protocol(protocol, catalog.by_name("kserve-sklearnserver")) == protocol


def test_openai_on_vllm_writes_v2_like_the_webhook_would():
    assert runtimes.kserve_protocol("openai", catalog.by_name("kserve-vllmserver")) == "v2"
    assert runtimes.kserve_protocol("openai", None, model_format="vLLM") == "v2"


def test_openai_on_the_hugging_face_server_writes_its_first_declared_protocol():
    assert runtimes.kserve_protocol("openai", catalog.by_name("kserve-huggingfaceserver")) == "v2"


def test_openai_before_the_runtime_is_known_is_left_unset():
    assert runtimes.kserve_protocol("openai", None) is None


def test_openai_on_a_custom_runtime_without_protocols_is_omitted():
    custom = _custom("my-llm", SupportedFormat("gguf", "1", True, 1), protocols=(), openai_compatible=True)
    assert runtimes.kserve_protocol("openai", custom) is None


def test_unknown_console_protocol_is_refused():
    with pytest.raises(ValueError, match="Unknown console protocol"):
        runtimes.kserve_protocol("grpc", None)


def test_openai_is_never_a_kserve_protocol_value():
    for runtime in BUILT_IN:
        assert runtimes.kserve_protocol("openai", runtime) in (None, "v1", "v2")


@pytest.mark.parametrize(
    ("fmt", "protocol", "expected_runtime", "expected_protocol"),
    [
        ("huggingface", "openai", "kserve-huggingfaceserver", "v2"),
        ("vLLM", "openai", "kserve-vllmserver", "v2"),
        ("sklearn", "v1", "kserve-sklearnserver", "v1"),
        ("sklearn", "v2", "kserve-mlserver", "v2"),
        ("huggingface", "v1", "kserve-huggingfaceserver", "v1"),
    ],
)
def test_resolve_auto_runtime_agrees_with_the_protocol_it_writes(fmt, protocol, expected_runtime, expected_protocol):
    runtime, kserve = runtimes.resolve_auto_runtime(fmt, None, protocol, BUILT_IN)
    assert (runtime.name, kserve) == (expected_runtime, expected_protocol)
    # What KServe will select from the written manifest is the same runtime.
    assert runtimes.select_runtime(fmt, None, kserve, BUILT_IN) == runtime


def test_resolve_auto_runtime_with_openai_on_a_classic_format_returns_the_classic_runtime():
    runtime, kserve = runtimes.resolve_auto_runtime("sklearn", None, "openai", BUILT_IN)
    assert runtime.name == "kserve-sklearnserver" and not runtime.openai_compatible and kserve == "v1"


def test_disabling_the_hugging_face_server_leaves_no_auto_selection_for_huggingface():
    pool = [replace(r, disabled=True) if r.name == "kserve-huggingfaceserver" else r for r in BUILT_IN]
    assert runtimes.resolve_auto_runtime("huggingface", None, "openai", pool)[0] is None
