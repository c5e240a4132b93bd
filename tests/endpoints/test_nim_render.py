"""For every NIM in NVIDIA's KServe layout (../shared/kserve/nim/): the runtime and the
InferenceService the console renders agree with NVIDIA's files field by field, and are valid for
the KServe CRDs of every release the console supports.

Where the console names things itself the test says so (NAMED_BY_THE_CONSOLE) and docs/nim.md
lists the same differences.
"""

from __future__ import annotations

import copy
import dataclasses
from functools import cache

import pytest
import yaml

from endpoints import nim
from endpoints.capabilities import declared_fields
from endpoints.models import Endpoint, HardwareProfile, Revision
from endpoints.reconcile import render
from endpoints.services.apply import serving_runtime_manifest
from endpoints.services.connections import connection_create, connection_opt_in
from endpoints.services.nim import catalog_entry, nim_deploy, nim_runtime_install
from tests.conftest import shared_path
from tests.endpoints.crd_schema import crd_version_schema, schema_errors, validator_for
from tests.endpoints.endpoint_factories import ClusterFactory
from tests.endpoints.test_connections import _release_reading
from tests.fixtures.kube import KSERVE_RELEASES

NGC_KEY = "nvapi-SECRET-abc123-ngc-key"  # noqa: S105 - a test value
# What the console names itself (NVIDIA's file → the console's object):
NAMED_BY_THE_CONSOLE = {
    "nvidia-nim-secrets": "ic-shared-<connection> (the NGC connection's Secret)",
    "ngc-secret": "ic-shared-<connection>-pull (the NGC connection's pull secret)",
    "llama-3.3-nemotron-super-49b-v1_2xgpu_1.8.2": "nvidia-nim-llama-3.3-nemotron-super-49b-v1-1.8.2 "
                                                   "(NVIDIA's name has '_', which Kubernetes names refuse)",
}


def _load(path):
    return yaml.safe_load(path.read_text())


def nvidia_runtimes() -> list:
    return sorted(shared_path("kserve", "nim", "runtimes").glob("*.yaml"))


def nvidia_isvcs() -> list:
    return sorted(shared_path("kserve", "nim", "inferenceservices").glob("*.yaml"))


def _entry_for_image(image: str) -> nim.NimEntry:
    found = [e for e in nim.builtin_entries() if e.image == image]
    assert len(found) == 1, f"the catalog has no single entry for {image}"
    return found[0]


def _normalised_runtime_spec(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    for fmt in spec["supportedModelFormats"]:
        fmt["name"] = fmt["name"].strip()
    container = spec["containers"][0]
    for env in container["env"]:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            ref["name"] = "<ngc secret>"
    container["env"].sort(key=lambda e: e["name"])
    spec["imagePullSecrets"] = [{"name": "<pull secret>"}]
    return spec


def test_every_nvidia_runtime_has_a_catalog_entry_and_every_entry_a_runtime():
    images = {_load(p)["spec"]["containers"][0]["image"] for p in nvidia_runtimes()}
    assert images == {e.image for e in nim.builtin_entries()}


@pytest.mark.parametrize("path", nvidia_runtimes(), ids=lambda p: p.stem)
def test_rendered_runtime_agrees_with_nvidia_field_by_field(path):
    theirs = _load(path)
    entry = _entry_for_image(theirs["spec"]["containers"][0]["image"])
    ours = nim.runtime_manifest(entry, name=entry.runtime_name, secret_name="ic-shared-ngc",
                                pull_secret_name="ic-shared-ngc-pull", namespace=None)
    assert ours["kind"] == theirs["kind"] == "ClusterServingRuntime"
    assert ours["apiVersion"] == theirs["apiVersion"]
    assert _normalised_runtime_spec(ours["spec"]) == _normalised_runtime_spec(theirs["spec"])
    # The secret keys the runtime reads are NVIDIA's, from the connection's Secret.
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in ours["spec"]["containers"][0]["env"] if "valueFrom" in e}
    assert refs == {"HF_TOKEN": {"name": "ic-shared-ngc", "key": "HF_TOKEN"},
                    "NGC_API_KEY": {"name": "ic-shared-ngc", "key": "NGC_API_KEY"}}
    assert ours["spec"]["imagePullSecrets"] == [{"name": "ic-shared-ngc-pull"}]
    if theirs["metadata"]["name"] != ours["metadata"]["name"]:
        assert theirs["metadata"]["name"] in NAMED_BY_THE_CONSOLE


@cache
def _validator(release: str, crd: str, version: str, strict_metadata: bool):
    path = shared_path("kserve", "versions", release, "crds", crd)
    return validator_for(crd_version_schema(path, version), strict_metadata=strict_metadata)


@pytest.fixture(scope="module")
def _module_world(django_db_setup, django_db_blocker):
    """A platform-wide NGC connection, every NIM installed, a project opted in, and GPU profiles
    for every shape of NVIDIA's InferenceServices (one without a node selector for "any GPU"),
    built once inside a transaction rolled back at the end of the module."""
    from django.db import transaction

    from endpoints.services.projects import project_create
    from tests.factories import UserFactory

    with django_db_blocker.unblock(), transaction.atomic():
        admin = UserFactory(username="nim-admin", is_superuser=True, is_staff=True)
        cluster = ClusterFactory(name="nim-cluster")
        project = project_create(actor=admin, name="nim-team", cluster=cluster, onboard=False)
        ngc = connection_create(actor=admin, project=None, name="ngc", kind="ngc", secrets={"api_key": NGC_KEY})
        connection_opt_in(actor=admin, connection=ngc, project=project)
        runtimes = {e.image: nim_runtime_install(actor=admin, entry=e, connection=ngc) for e in nim.builtin_entries()}
        profiles = {
            "": HardwareProfile.objects.create(name="gpu-80", display_name="Any 80 GB GPU",
                                               accelerator_resource="nvidia.com/gpu",
                                               accelerator_product="NVIDIA-A100-SXM4-80GB",
                                               max_accelerators_per_replica=8, max_cpu="64", max_memory="512Gi"),
        }
        for product in ("NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-SXM4-80GB"):
            profiles[product] = HardwareProfile.objects.create(
                name=product.lower()[:40], display_name=product, accelerator_resource="nvidia.com/gpu",
                accelerator_product=product, node_selector={"nvidia.com/gpu.product": product},
                max_accelerators_per_replica=8, max_cpu="64", max_memory="512Gi")
        yield admin, project, ngc, runtimes, profiles
        transaction.set_rollback(True)


@pytest.fixture
def world(_module_world, db):
    return _module_world


@pytest.mark.django_db
def test_installed_runtime_as_applied_agrees_with_the_catalog_rendering(world):
    admin, project, ngc, runtimes, _profiles = world
    for image, runtime in runtimes.items():
        entry = _entry_for_image(image)
        applied = serving_runtime_manifest(runtime, project.namespace)
        assert applied["kind"] == "ServingRuntime" and applied["metadata"]["namespace"] == project.namespace
        expected = nim.runtime_manifest(entry, name=entry.runtime_name, secret_name="ic-shared-ngc",
                                        pull_secret_name="ic-shared-ngc-pull", namespace=project.namespace)
        assert applied["spec"] == expected["spec"]
        assert NGC_KEY not in yaml.safe_dump(applied)


def _console_isvc(world, path) -> tuple[dict, dict]:
    admin, project, _ngc, runtimes, profiles = world
    theirs = _load(path)
    predictor = theirs["spec"]["predictor"]
    runtime_name = predictor["model"]["runtime"]
    entry = next(e for e in nim.builtin_entries()
                 if e.runtime_name == runtime_name or NAMED_BY_THE_CONSOLE.get(runtime_name, "").startswith(
                     e.runtime_name))
    count = int(predictor["model"]["resources"]["limits"]["nvidia.com/gpu"])
    product = (predictor.get("nodeSelector") or {}).get("nvidia.com/gpu.product", "")
    endpoint = nim_deploy(actor=admin, project=project, runtime=runtimes[entry.image], name=theirs["metadata"]["name"],
                          hardware_profile=profiles[product], accelerator_count=count,
                          deployment_mode=Endpoint.DeploymentMode.KNATIVE)
    ours = Revision.objects.get(endpoint=endpoint, generation=1).manifest
    return theirs, ours


@pytest.mark.django_db
@pytest.mark.parametrize("path", nvidia_isvcs(), ids=lambda p: p.stem)
def test_rendered_inference_service_agrees_with_nvidia_field_by_field(world, path):
    theirs, ours = _console_isvc(world, path)
    want, got = theirs["spec"]["predictor"], ours["spec"]["predictor"]
    assert got["model"]["modelFormat"]["name"] == want["model"]["modelFormat"]["name"]
    assert got["model"]["runtime"] in (want["model"]["runtime"],
                                       NAMED_BY_THE_CONSOLE.get(want["model"]["runtime"], "").split(" ")[0])
    assert got["model"]["storageUri"] == want["model"]["storageUri"] == "pvc://nvidia-nim-pvc/"
    for side in ("limits", "requests"):
        assert got["model"]["resources"][side]["nvidia.com/gpu"] == want["model"]["resources"][side]["nvidia.com/gpu"]
    assert got.get("nodeSelector") == want.get("nodeSelector")
    assert got["minReplicas"] == want["minReplicas"]
    # NVIDIA's autoscaling.knative.dev/target: "10" is what KServe writes for scaleTarget 10 on
    # the concurrency metric in Knative mode.
    assert theirs["metadata"]["annotations"] == {"autoscaling.knative.dev/target": "10"}
    assert (got["scaleMetric"], got["scaleTarget"]) == ("concurrency", 10)
    # The console's additions, each explained in docs/nim.md: the NIM's version on the format,
    # protocolVersion v2 (the runtime's protocols; KServe checks them for an explicit runtime),
    # an explicit maxReplicas, the NIM's CPU and memory (equal to the runtime's), a request
    # timeout for LLMs, the payload logger (the console's audit of requests), and bookkeeping labels and annotations.
    extra = set(got) - set(want)
    assert extra <= {"maxReplicas", "scaleMetric", "scaleTarget", "timeout", "logger"}
    assert set(got["model"]) - set(want["model"]) <= {"protocolVersion"}
    assert got["model"]["modelFormat"].get("version") in (None, _version_of(want["model"]["runtime"]))


def _version_of(runtime_name: str) -> str:
    return runtime_name.rsplit("-", 1)[-1].rsplit("_", 1)[-1]


@pytest.mark.django_db
@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_every_rendered_object_is_valid_for_the_crds_of_every_release(world, release):
    admin, project, _ngc, runtimes, _profiles = world
    # Rendered for a cluster of that release, as the worker does (its CRD's fields decide which
    # console-added logger fields stay).
    crd = yaml.load(shared_path("kserve", "versions", release, "crds", "inferenceservices.yaml").read_text(),
                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    reading = dataclasses.replace(_release_reading(release), isvc_fields=declared_fields(crd))
    isvc = _validator(release, "inferenceservices.yaml", "v1beta1", True)
    namespaced = _validator(release, "servingruntimes.yaml", "v1alpha1", False)
    clusterwide = _validator(release, "clusterservingruntimes.yaml", "v1alpha1", False)
    problems = {}
    for runtime in runtimes.values():
        entry = _entry_for_image(runtime.container_image)
        problems[runtime.name] = schema_errors(namespaced, serving_runtime_manifest(runtime, project.namespace))
        problems[runtime.name + " (cluster)"] = schema_errors(clusterwide, nim.runtime_manifest(
            entry, name=entry.runtime_name, secret_name="s", pull_secret_name="p", namespace=None))
    for path in nvidia_isvcs():
        theirs, _ours = _console_isvc(world, path)
        spec = Revision.objects.get(endpoint__name=theirs["metadata"]["name"], generation=1).spec
        problems[path.stem] = schema_errors(isvc, render(spec, reading))
    assert {name: errs for name, errs in problems.items() if errs} == {}


def test_catalog_entries_read_back_from_nvidia_runtimes_match_image_format_and_resources():
    for path in nvidia_runtimes():
        obj = _load(path)
        read = nim.entry_from_runtime(obj)
        shipped = _entry_for_image(obj["spec"]["containers"][0]["image"])
        for field in ("image", "version", "model_format", "cpu_request", "cpu_limit", "memory_request", "memory_limit",
                      "shm_size", "shm_mount_path", "cache_path"):
            assert getattr(read, field) == getattr(shipped, field), (path.stem, field)


@pytest.mark.django_db
def test_catalog_entry_lookup():
    assert catalog_entry("llama3-8b-instruct", "1.0.0").model_format == "nvidia-nim-llama3-8b-instruct"
