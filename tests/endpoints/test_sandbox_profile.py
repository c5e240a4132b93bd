"""The sandbox's built-in release profile must be KServe 0.20 as installed by default, and the
sandbox's runtime selection, written independently of the console's, must pick what the
console predicts for every model format the console's catalog knows.

The sandbox is the cluster the console is checked against: if both read the same data or ran
the same code, a mistake would agree with itself. So the profile is compared with KServe's own
runtime files in ../shared, and the two selections with each other.
"""

from __future__ import annotations

import itertools
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from endpoints import catalog, runtimes
from endpoints.sandbox import profile as profiles
from endpoints.sandbox import selection
from endpoints.sandbox.errors import ApiError
from tests.conftest import shared_path

BUILTIN = profiles.load_builtin()


def _by_name() -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in BUILTIN.runtimes}


# --- the profile on its own --------------------------------------------------------------


def test_the_builtin_profile_is_kserve_0_20_with_its_fourteen_default_runtimes():
    assert BUILTIN.name == "builtin" and BUILTIN.kserve_version == "0.20.0"
    assert len(BUILTIN.runtimes) == 14
    assert "kserve-openvino" not in _by_name()  # shipped by KServe, not installed by default
    assert all(r["kind"] == "ClusterServingRuntime" for r in BUILTIN.runtimes)
    assert BUILTIN.protocol_order == ("v1", "v2", "grpc-v1", "grpc-v2")


def test_the_builtin_profile_carries_the_webhook_facts_the_controller_needs():
    assert BUILTIN.deployment_mode_aliases == {"Serverless": "Knative", "RawDeployment": "Standard"}
    assert BUILTIN.protocol_v2_formats == {"triton", "vLLM"}
    assert set(BUILTIN.legacy_framework_keys) == {"sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch",
                                                  "triton", "onnx", "huggingface", "pmml", "paddle"}


def test_runtime_objects_are_copies_so_the_shared_manifests_stay_intact():
    first = BUILTIN.runtime_objects()
    first[0]["spec"]["supportedModelFormats"].clear()
    assert profiles.load_builtin().runtime_objects()[0]["spec"]["supportedModelFormats"]


def test_format_versions_are_strings_as_kserve_compares_them():
    for runtime in BUILTIN.runtimes:
        for entry in runtime["spec"]["supportedModelFormats"]:
            assert isinstance(entry.get("version", ""), str), runtime["metadata"]["name"]


def _write_profile(folder, runtimes_yaml: dict[str, str], profile_yaml: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(profile_yaml if profile_yaml is not None else
                                         "name: test\nkserveVersion: '0.0'\nprotocolOrder: [v1, v2]\n")
    (folder / "runtimes").mkdir(exist_ok=True)
    for name, text in runtimes_yaml.items():
        (folder / "runtimes" / name).write_text(text)
    return folder


def _runtime_yaml(name: str, fmt: str = "sklearn") -> str:
    return yaml.safe_dump({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
                           "metadata": {"name": name},
                           "spec": {"supportedModelFormats": [{"name": fmt, "autoSelect": True}],
                                    "containers": [{"name": "kserve-container", "image": "x"}]}})


def test_a_profile_is_any_directory_with_the_same_layout(tmp_path):
    folder = _write_profile(tmp_path / "other", {"b.yaml": _runtime_yaml("b"), "a.yaml": _runtime_yaml("a")})
    loaded = profiles.load(folder)
    assert loaded.name == "test" and [r["metadata"]["name"] for r in loaded.runtimes] == ["a", "b"]
    # Unstated webhook facts are those every release 0.13-0.20 shares; a release before 0.17
    # ("0.0" here) rewrites no deployment-mode spelling.
    assert loaded.deployment_mode_aliases == {} and loaded.protocol_v2_formats == {"triton", "vLLM"}


def test_a_kustomization_in_runtimes_limits_the_profile_to_what_it_lists(tmp_path):
    # KServe's config/runtimes keeps files it does not install; installed means listed.
    folder = _write_profile(tmp_path / "kustomized", {
        "a.yaml": _runtime_yaml("a"), "unlisted.yaml": _runtime_yaml("unlisted"),
        "kustomization.yaml": "resources:\n- a.yaml\n"})
    assert [r["metadata"]["name"] for r in profiles.load(folder).runtimes] == ["a"]


@pytest.mark.parametrize(("files", "profile_yaml", "message"), [
    ({}, "", "expected one YAML mapping"),
    ({}, "protocolOrder: v1\n", "protocolOrder must be a list"),
    ({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"}, None, "got v1 ConfigMap"),
    ({"a.yaml": _runtime_yaml("a"), "b.yaml": _runtime_yaml("a")}, None, "defined twice"),
    ({"a.yaml": "key: [unclosed\n"}, None, "a.yaml"),
    ({"kustomization.yaml": "resources:\n- gone.yaml\n"}, None, "gone.yaml is not a file"),
])
def test_an_unusable_profile_is_refused_naming_the_file(tmp_path, files, profile_yaml, message):
    folder = _write_profile(tmp_path / "bad", files, profile_yaml)
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.load(folder)


def test_a_directory_without_profile_yaml_or_runtimes_is_not_a_profile(tmp_path):
    with pytest.raises(profiles.ProfileError, match="neither profile.yaml nor runtimes/"):
        profiles.load(tmp_path)


def test_the_profile_files_are_package_data():
    # A wheel without them would start a sandbox with no runtimes at all.
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["endpoints"]
    package_root = Path(profiles.__file__).resolve().parents[1]
    shipped = {p for pattern in patterns for p in package_root.glob(pattern)}
    assert BUILTIN.path / "profile.yaml" in shipped
    assert set((BUILTIN.path / "runtimes").glob("*.yaml")) <= shipped


# --- the profile against KServe 0.20's own runtime files (../shared) -----------------------


def _kserve_runtimes() -> tuple[dict[str, dict], dict[str, str]]:
    """(name → ClusterServingRuntime the default kustomization installs, image name → image)."""
    folder = shared_path("kserve", "runtimes")
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    found: dict[str, dict] = {}
    for filename in kustomization["resources"]:
        for doc in yaml.safe_load_all((folder / filename).read_text()):
            if doc and doc.get("kind") == "ClusterServingRuntime":
                found[doc["metadata"]["name"]] = doc
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images") or []}
    return found, images


@pytest.fixture(scope="module")
def kserve():
    return _kserve_runtimes()


def _format_tuples(runtime: dict) -> list[tuple]:
    return [(f["name"], str(f["version"]) if "version" in f else None, f.get("autoSelect", False),
             f.get("priority")) for f in runtime["spec"]["supportedModelFormats"]]


def _container(runtime: dict, name: str = "kserve-container") -> dict:
    return next(c for c in runtime["spec"]["containers"] if c["name"] == name)


@pytest.mark.shared
def test_same_runtimes_as_the_default_install(kserve):
    assert set(_by_name()) == set(kserve[0])


@pytest.mark.shared
def test_same_formats_versions_autoselect_and_priorities_in_declared_order(kserve):
    ours = _by_name()
    for name, theirs in kserve[0].items():
        assert _format_tuples(ours[name]) == _format_tuples(theirs), name


@pytest.mark.shared
def test_same_protocol_versions_in_declared_order(kserve):
    ours = _by_name()
    for name, theirs in kserve[0].items():
        assert ours[name]["spec"].get("protocolVersions") == theirs["spec"].get("protocolVersions"), name


@pytest.mark.shared
def test_same_multinode_disabled_and_multimodel_flags(kserve):
    ours = _by_name()
    for name, theirs in kserve[0].items():
        for key in ("disabled", "multiModel"):
            assert ours[name]["spec"].get(key, False) == theirs["spec"].get(key, False), (name, key)
        assert ("workerSpec" in ours[name]["spec"]) == ("workerSpec" in theirs["spec"]), name
        if "workerSpec" in theirs["spec"]:
            for key in ("pipelineParallelSize", "tensorParallelSize"):
                assert ours[name]["spec"]["workerSpec"][key] == theirs["spec"]["workerSpec"][key], (name, key)


@pytest.mark.shared
def test_same_server_type_metrics_annotations_images_and_container_resources(kserve):
    ours = _by_name()
    runtimes_, images = kserve
    for name, theirs in runtimes_.items():
        mine = ours[name]
        assert mine["metadata"]["annotations"] == theirs["metadata"]["annotations"], name
        assert mine["spec"]["annotations"] == theirs["spec"]["annotations"], name
        container, upstream = _container(mine), _container(theirs)
        # Upstream images are kustomize placeholders ("<name>:replace") resolved by its images list.
        assert container["image"] == images[upstream["image"].split(":")[0]], name
        assert container["resources"] == upstream["resources"], name
        if name != "kserve-huggingfaceserver-multinode":  # ours leaves out the Ray start-up script
            assert container.get("command") == upstream.get("command"), name
            assert container.get("args") == upstream.get("args"), name


@pytest.mark.shared
def test_the_profile_is_valid_against_kserves_full_crds(fake_apiserver_with_crds):
    # Store.create validates strictly: an unknown field is refused rather than pruned.
    store = fake_apiserver_with_crds.store
    for runtime in BUILTIN.runtime_objects():
        try:
            stored = store.create(runtime, manager="test")
        except ApiError as exc:
            pytest.fail(f"{runtime['metadata']['name']}: {exc}")
        assert stored["spec"] == runtime["spec"], runtime["metadata"]["name"]


# --- the sandbox's selection against the console's (both independent, must agree) ----------


def _catalog_formats() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for runtime in catalog.BUILT_IN_RUNTIMES:
        for fmt in runtime.formats:
            out.setdefault(fmt.name, set()).add(fmt.version)
    return out


PROTOCOLS = (None, "v1", "v2", "grpc-v1", "grpc-v2")


def _sandbox_pick(fmt, version, protocol, *, multinode=False, namespaced=(), cluster=None):
    request = selection.ModelRequest(format=fmt, version=version, protocol=protocol, multinode=multinode)
    found = selection.select_runtime(request, namespaced, BUILTIN.runtimes if cluster is None else cluster,
                                     BUILTIN.protocol_order)
    return found.name


def test_auto_selection_agrees_with_the_console_for_every_catalog_format_version_and_protocol():
    cases = 0
    for fmt, versions in _catalog_formats().items():
        for version, protocol, multinode in itertools.product(
                [None, *sorted(versions), "0.9"], PROTOCOLS, (False, True)):
            console = runtimes.select_runtime(fmt, version, protocol, catalog.BUILT_IN_RUNTIMES, multinode=multinode)
            sandbox = _sandbox_pick(fmt, version, protocol, multinode=multinode)
            assert sandbox == (console.name if console else None), (fmt, version, protocol, multinode)
            cases += 1
    assert cases > 300


def test_the_full_candidate_order_agrees_with_the_console():
    for fmt, protocol in itertools.product(_catalog_formats(), PROTOCOLS):
        request = selection.ModelRequest(format=fmt, protocol=protocol)
        ours = [r["metadata"]["name"] for _, r in selection.supporting_runtimes(
            request, [], BUILTIN.runtimes, BUILTIN.protocol_order)]
        theirs = [r.name for r in runtimes.supporting_runtimes(fmt, None, protocol, catalog.BUILT_IN_RUNTIMES)]
        assert ours == theirs, (fmt, protocol)


def test_an_explicit_runtime_is_accepted_or_refused_alike_when_the_protocol_is_given():
    # With an unset protocol KServe does not check an explicit runtime's protocols (the sandbox
    # follows it); the console counts unset as v1 there and never writes an unset protocol for a
    # runtime that lacks v1, so only given protocols are compared.
    for runtime, fmt, protocol in itertools.product(catalog.BUILT_IN_RUNTIMES, _catalog_formats(), PROTOCOLS[1:]):
        for version in (None, *sorted(_catalog_formats()[fmt])):
            console_ok, _ = runtimes.runtime_supports(runtime, fmt, version, protocol)
            request = selection.ModelRequest(format=fmt, version=version, protocol=protocol, runtime=runtime.name)
            ours = selection.select_runtime(request, [], BUILTIN.runtimes, BUILTIN.protocol_order)
            assert ours.ok == console_ok, (runtime.name, fmt, version, protocol, ours.message)


def _as_console_spec(obj: dict, *, namespaced: bool):
    """The console's view of a runtime object (test-only glue between the two worlds)."""
    spec = obj["spec"]
    stamp = obj["metadata"].get("creationTimestamp")
    return catalog.RuntimeSpec(
        name=obj["metadata"]["name"], display_name=obj["metadata"]["name"],
        formats=tuple(catalog.SupportedFormat(name=f["name"], version=f.get("version", ""),
                                              auto_select=bool(f.get("autoSelect")), priority=f.get("priority"))
                      for f in spec.get("supportedModelFormats") or []),
        protocols=tuple(spec.get("protocolVersions") or ()), multinode="workerSpec" in spec,
        disabled=bool(spec.get("disabled")), multi_model=bool(spec.get("multiModel")), namespaced=namespaced,
        created_at=datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None)


def _custom(name, formats, protocols=("v1", "v2"), created="2026-01-01T00:00:00Z", **spec):
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"supportedModelFormats": formats, "protocolVersions": list(protocols),
                     "containers": [{"name": "kserve-container", "image": "x"}], **spec}}


CUSTOM_NAMESPACE_RUNTIMES = [
    _custom("team-sklearn", [{"name": "sklearn", "version": "1", "autoSelect": True}]),
    _custom("team-sklearn-newer", [{"name": "sklearn", "version": "1", "autoSelect": True}],
            created="2026-02-01T00:00:00Z"),
    _custom("team-sklearn-prio", [{"name": "sklearn", "version": "1", "autoSelect": True, "priority": 1}],
            protocols=("v2",)),
    _custom("team-xgb-off", [{"name": "xgboost", "autoSelect": True, "priority": 9}], disabled=True),
    _custom("team-onnx", [{"name": "onnx", "version": "1", "autoSelect": True, "priority": 1}], protocols=()),
    _custom("team-mm", [{"name": "pmml", "autoSelect": True, "priority": 5}], multiModel=True),
]


@pytest.mark.parametrize("subset", [
    CUSTOM_NAMESPACE_RUNTIMES,
    CUSTOM_NAMESPACE_RUNTIMES[:2],
    CUSTOM_NAMESPACE_RUNTIMES[3:],
    [],
])
def test_auto_selection_with_namespace_runtimes_agrees_with_the_console(subset):
    cluster_console = [_as_console_spec(r, namespaced=False) for r in BUILTIN.runtimes]
    namespaced_console = [_as_console_spec(r, namespaced=True) for r in subset]
    for fmt, protocol in itertools.product([*_catalog_formats(), "team-only"], PROTOCOLS):
        for version in (None, "1"):
            console = runtimes.select_runtime(fmt, version, protocol, namespaced_console + cluster_console)
            sandbox = _sandbox_pick(fmt, version, protocol, namespaced=subset)
            assert sandbox == (console.name if console else None), (fmt, version, protocol)
