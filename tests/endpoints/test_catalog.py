"""The built-in runtime catalog must say exactly what KServe's default runtime YAML says:
auto-selection and the console's explanations are only right if formats, versions,
autoSelect, priorities, protocols and multi-node-ness match."""

from __future__ import annotations

import pytest
import yaml

from endpoints import catalog
from tests.conftest import shared_path

pytestmark = pytest.mark.shared


def _kustomized_runtimes() -> dict[str, dict]:
    """name → ClusterServingRuntime for every file the default kustomization installs."""
    folder = shared_path("kserve", "runtimes")
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    found: dict[str, dict] = {}
    for filename in kustomization["resources"]:
        for doc in yaml.safe_load_all((folder / filename).read_text()):
            if doc and doc.get("kind") == "ClusterServingRuntime":
                found[doc["metadata"]["name"]] = doc
    return found


@pytest.fixture(scope="module")
def kserve_runtimes() -> dict[str, dict]:
    return _kustomized_runtimes()


def test_every_runtime_of_the_default_install_is_in_the_catalog(kserve_runtimes):
    assert set(kserve_runtimes) == {runtime.name for runtime in catalog.BUILT_IN_RUNTIMES}
    assert len(kserve_runtimes) == 14


def test_openvino_is_not_in_the_catalog_because_the_default_install_skips_it():
    assert catalog.by_name("kserve-openvino") is None
    # The file exists upstream; the kustomization just does not list it.
    assert shared_path("kserve", "runtimes", "kserve-openvino.yaml").exists()


def test_supported_formats_match_kserve_exactly(kserve_runtimes):
    for name, doc in kserve_runtimes.items():
        declared = [
            (f["name"], str(f["version"]) if "version" in f else "", bool(f.get("autoSelect", False)), f.get("priority"))
            for f in doc["spec"]["supportedModelFormats"]
        ]
        ours = [(f.name, f.version, f.auto_select, f.priority) for f in catalog.by_name(name).formats]
        assert ours == declared, name


def test_protocols_match_kserve_in_declared_order(kserve_runtimes):
    for name, doc in kserve_runtimes.items():
        assert list(catalog.by_name(name).protocols) == list(doc["spec"].get("protocolVersions") or []), name


def test_multinode_flag_matches_the_presence_of_a_worker_spec(kserve_runtimes):
    for name, doc in kserve_runtimes.items():
        assert catalog.by_name(name).multinode is ("workerSpec" in doc["spec"]), name
    assert catalog.by_name("kserve-huggingfaceserver-multinode").multinode


def test_no_built_in_runtime_is_disabled_or_multi_model(kserve_runtimes):
    for name, doc in kserve_runtimes.items():
        spec = catalog.by_name(name)
        assert spec.disabled is bool(doc["spec"].get("disabled", False)), name
        assert spec.multi_model is bool(doc["spec"].get("multiModel", False)), name


def test_container_defaults_match_the_runtime_containers(kserve_runtimes):
    for name, doc in kserve_runtimes.items():
        container = next(c for c in doc["spec"]["containers"] if c["name"] == "kserve-container")
        resources = container["resources"]
        defaults = catalog.by_name(name).container_defaults
        assert defaults == catalog.ContainerResources(
            cpu_request=str(resources["requests"]["cpu"]),
            cpu_limit=str(resources["limits"]["cpu"]),
            memory_request=str(resources["requests"]["memory"]),
            memory_limit=str(resources["limits"]["memory"]),
        ), name


def test_openai_capable_runtimes_and_their_route_prefixes():
    openai = {r.name: r.openai_route_prefix for r in catalog.BUILT_IN_RUNTIMES if r.openai_compatible}
    assert openai == {
        "kserve-huggingfaceserver": "/openai",
        "kserve-huggingfaceserver-multinode": "/openai",
        # upstream vLLM serves /v1/... with no prefix
        "kserve-vllmserver": "",
    }
    assert catalog.by_name("kserve-vllmserver").openai_only
    assert not catalog.by_name("kserve-huggingfaceserver").openai_only


def test_as_model_fields_spells_formats_as_kserve_and_leaves_disabled_to_the_admin():
    fields = catalog.as_model_fields(catalog.by_name("kserve-tritonserver"))
    assert "disabled" not in fields and "name" not in fields
    pytorch = next(f for f in fields["supported_formats"] if f["name"] == "pytorch")
    assert pytorch == {"name": "pytorch", "version": "1", "autoSelect": False}
    assert fields["protocols"] == ["v2", "grpc-v2"]


def test_every_runtime_has_a_display_name_and_one_line_description():
    for runtime in catalog.BUILT_IN_RUNTIMES:
        assert runtime.display_name and runtime.description
        assert "\n" not in runtime.description


def test_catalog_entries_are_immutable():
    runtime = catalog.by_name("kserve-sklearnserver")
    with pytest.raises(AttributeError):
        runtime.name = "other"  # type: ignore[misc]


def test_container_defaults_of_a_database_row_of_a_built_in_runtime_come_from_the_catalog():
    row_like = catalog.RuntimeSpec(name="kserve-sklearnserver", display_name="x", formats=())
    assert catalog.container_defaults_for(row_like) == catalog.by_name("kserve-sklearnserver").container_defaults
    custom = catalog.RuntimeSpec(name="kserve-sklearnserver", display_name="x", formats=(), namespaced=True)
    assert catalog.container_defaults_for(custom) is None
