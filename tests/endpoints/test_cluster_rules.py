"""Validation, rendering and the plan for the cluster an endpoint deploys to (issue #16, build
item 3): each rule from the user's side (the API refuses, naming the cluster setting and the way
out; the accepted case goes through), and for the mode spelling, Knative's node placement,
modelcar, logger fields and the canary at creation, the cluster's own verdict: what the console
renders is applied straight to a sandbox playing that release.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from endpoints import catalog, reconcile
from endpoints.capabilities import BOOKKEEPING_ANNOTATIONS, Capabilities
from endpoints.cluster import ClusterClient, PermanentClusterError
from endpoints.models import Endpoint, EndpointStatus, HardwareProfile, Revision
from endpoints.planning import plan_for
from endpoints.services.capabilities import read_capabilities, store_reading
from endpoints.services.endpoints import endpoint_create
from endpoints.services.registry import model_version_create
from endpoints.status import observe, revision_traffic
from endpoints.validation import EndpointDraft, HardwareLimits, validate_endpoint
from tests.endpoints.endpoint_factories import deploy_setup, grant
from tests.endpoints.test_render import make_spec
from tests.fixtures.kube import release_sandbox

LIST = "/api/v1/endpoints/"
MODE = "serving.kserve.io/deploymentMode"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
KNATIVE_REFUSAL = 'denied the request: validation failed: must not set the field(s)'

# What the console renders, as the CRD of every release 0.15.1 on declares it.
FIELDS = [
    "predictor", "predictor.minReplicas", "predictor.maxReplicas", "predictor.scaleMetric", "predictor.scaleTarget",
    "predictor.containerConcurrency", "predictor.timeout", "predictor.canaryTrafficPercent",
    "predictor.nodeSelector", "predictor.tolerations", "predictor.logger", "predictor.logger.mode",
    "predictor.logger.url", "predictor.logger.metadataHeaders", "predictor.logger.metadataAnnotations",
    "predictor.model", "predictor.model.modelFormat", "predictor.model.runtime", "predictor.model.storageUri",
    "predictor.model.protocolVersion", "predictor.model.resources", "predictor.model.env", "predictor.model.args",
]


# The runtimes a default install declares, as a reading lists them (the console's catalog).
CATALOG_RUNTIMES = [
    {"name": r.name, "kind": "ClusterServingRuntime", "namespace": "", "created": "",
     "formats": [{"name": f.name, **({"version": f.version} if f.version else {}), "autoSelect": f.auto_select,
                  **({"priority": f.priority} if f.priority is not None else {})} for f in r.formats],
     "protocols": list(r.protocols), "disabled": False, "multi_model": r.multi_model, "multi_node": r.multinode,
     "image": "", "server_type": ""}
    for r in catalog.BUILT_IN_RUNTIMES
]


def reading(*, release=(0, 20), fields=None, features=None, defaults=None, modelcar=True,
            disallowed=BOOKKEEPING_ANNOTATIONS, knative=True) -> Capabilities:
    config = {"storageInitializer": json.dumps({"enableModelcar": modelcar}),
              "inferenceService": json.dumps({"serviceAnnotationDisallowedList": list(disallowed)})}
    return Capabilities(read_at="2026-01-01T00:00:00+00:00", reachable=True, authenticated=True, kserve=True,
                        release=list(release), isvc_fields=list(FIELDS if fields is None else fields),
                        isvc_config={"data": config}, knative=knative, knative_features=dict(features or {}),
                        knative_defaults=dict(defaults or {}), cluster_runtimes=CATALOG_RUNTIMES)


@pytest.fixture
def setup(alice):
    setup = deploy_setup(actor=alice)
    grant(alice, setup.project, "view", "deploy")
    return setup


def on_cluster(setup, reading_: Capabilities) -> None:
    store_reading(cluster=setup.cluster, reading=reading_)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def create(user, setup, **body):
    return api(user).post(LIST, {"project": setup.project.pk, "name": "scorer", "model_version": setup.v1.pk,
                                 **body}, format="json")


def plan_new(user, setup, **body) -> dict:
    response = api(user).post(f"{LIST}plan/", {"project": setup.project.pk, "name": "scorer",
                                               "model_version": setup.v1.pk, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def gpu_profile(setup, **fields) -> HardwareProfile:
    HardwareProfile.objects.filter(pk=setup.profile.pk).update(
        **{"node_selector": GPU_NODE_SELECTOR, "tolerations": GPU_TOLERATIONS, **fields})
    return HardwareProfile.objects.get(pk=setup.profile.pk)


def manifest_of(name="scorer") -> dict:
    endpoint = Endpoint.objects.get(name=name)
    return Revision.objects.get(endpoint=endpoint, generation=endpoint.generation).manifest


# --- 1. the deployment mode as the release spells it -----------------------------------------


@pytest.mark.parametrize(("release", "mode", "written"), [
    ((0, 13), "Knative", "Serverless"), ((0, 15, 1), "Standard", "RawDeployment"),
    ((0, 16), "Standard", "Standard"), ((0, 20), "Knative", "Knative")])
def test_the_mode_is_written_as_the_clusters_release_spells_it(alice, setup, release, mode, written):
    on_cluster(setup, reading(release=release))
    assert create(alice, setup, deployment_mode=mode).status_code == 201
    manifest = manifest_of()
    assert manifest["metadata"]["annotations"][MODE] == written
    assert Endpoint.objects.get(name="scorer").deployment_mode == mode  # the console keeps its own words
    # The reconciler does not take either spelling for drift.
    live = json.loads(json.dumps(manifest))
    live["metadata"]["annotations"][MODE] = {"Serverless": "Knative", "RawDeployment": "Standard"}.get(written,
                                                                                                      written)
    assert reconcile.drifted_paths(live, manifest) == []
    live["metadata"]["annotations"][MODE] = "Standard" if mode == "Knative" else "Knative"
    assert reconcile.drifted_paths(live, manifest) == [r"metadata.annotations.serving\.kserve\.io/deploymentMode"]


@pytest.mark.shared
def test_on_0_13_standard_mode_reaches_the_cluster_as_rawdeployment_and_deploys():
    """0.13 takes ``Standard`` for an unknown value, i.e. its default (Serverless): Knative then
    refuses the node selector. Written ``RawDeployment``, the cluster deploys it."""
    spec = make_spec(namespace="default", deployment_mode="Standard",
                     hardware={"node_selector": {"kubernetes.io/hostname": "cpu-node-1"}, "tolerations": []})
    with release_sandbox("0.13.1") as sandbox, ClusterClient.for_url(sandbox.url) as client:
        caps = read_capabilities(client, namespaces=["default"])
        assert caps.release_tuple[:2] == (0, 13)
        client.apply(reconcile.render(spec, caps))
        ready = sandbox.wait_ready("default", "iris")
        assert ready["metadata"]["annotations"][MODE] == "RawDeployment"
        unadapted = reconcile.render({**spec, "name": "unadapted"})
        client.apply(unadapted)
        sandbox.wait_for(lambda: any(KNATIVE_REFUSAL in e.get("message", "")
                                     for e in sandbox.store.list("events", "default")),
                         message="Knative's refusal of the Standard spelling")
        assert not _ready(sandbox.isvc("default", "unadapted"))


def _ready(obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in ((obj or {}).get("status") or {}).get("conditions") or [])


# --- 2. only fields the release's CRD declares ---------------------------------------------------


def test_logger_fields_the_release_lacks_are_left_out_and_the_plan_says_what_is_lost(alice, setup):
    on_cluster(setup, reading(release=(0, 13), fields=[f for f in FIELDS if "metadata" not in f]))
    body = plan_new(alice, setup, logging_mode="all")
    lost = [w for w in body["warnings"] if "Payload logging works" in w]
    assert lost and "logger.metadataHeaders, logger.metadataAnnotations" in lost[0]
    assert "caller's identity" in lost[0]
    assert create(alice, setup, logging_mode="all").status_code == 201  # logging itself is not refused
    logger = manifest_of()["spec"]["predictor"]["logger"]
    assert set(logger) == {"mode", "url"}


def test_on_a_release_that_declares_them_the_logger_fields_stay_and_nothing_is_said(alice, setup):
    on_cluster(setup, reading(release=(0, 20)))
    body = plan_new(alice, setup, logging_mode="all")
    assert not [w for w in body["warnings"] if "Payload logging works" in w]
    assert create(alice, setup, logging_mode="all").status_code == 201
    assert "metadataHeaders" in manifest_of()["spec"]["predictor"]["logger"]


def test_a_setting_the_clusters_crd_does_not_declare_is_refused_not_dropped(alice, setup):
    on_cluster(setup, reading(fields=[f for f in FIELDS if f != "predictor.containerConcurrency"]))
    response = create(alice, setup, container_concurrency=4)
    assert response.status_code == 400
    [message] = response.json()["errors"]["container_concurrency"]
    assert "does not know spec.predictor.containerConcurrency" in message and "clear it" in message
    assert create(alice, setup).status_code == 201


@pytest.mark.shared
def test_on_0_13_the_adapted_logger_is_accepted_under_strict_and_the_unadapted_one_refused():
    spec = make_spec(namespace="default", logging={"mode": "all", "url": "http://sink.example/"})
    with release_sandbox("0.13.1") as sandbox, ClusterClient.for_url(sandbox.url) as client:
        caps = read_capabilities(client, namespaces=["default"])
        with pytest.raises(PermanentClusterError) as refused:
            client.apply(reconcile.render(spec))
        assert "metadataHeaders" in str(refused.value.message)
        client.apply(reconcile.render(spec, caps))
        sandbox.wait_ready("default", "iris")


# --- 3. Knative's node placement flags ------------------------------------------------------------


def test_a_placing_hardware_profile_in_knative_mode_is_refused_naming_the_flag(alice, setup):
    on_cluster(setup, reading())
    gpu_profile(setup)
    response = create(alice, setup, hardware_profile=setup.profile.pk, accelerator_count=1)
    assert response.status_code == 400
    [message] = response.json()["errors"]["deployment_mode"]
    assert message.startswith(f"Knative on cluster {setup.cluster.name} refuses node selectors and tolerations")
    assert "kubernetes.podspec-nodeselector, kubernetes.podspec-tolerations" in message
    assert "choose Standard mode, or ask an admin to enable" in message
    assert create(alice, setup, hardware_profile=setup.profile.pk, accelerator_count=1,
                  deployment_mode="Standard").status_code == 201


def test_with_the_flags_enabled_knative_mode_takes_the_profile(alice, setup):
    on_cluster(setup, reading(features={"kubernetes.podspec-nodeselector": "enabled",
                                        "kubernetes.podspec-tolerations": "enabled"}))
    gpu_profile(setup)
    assert create(alice, setup, hardware_profile=setup.profile.pk, accelerator_count=1).status_code == 201


def test_without_a_usable_reading_nothing_is_refused_on_a_guess(alice, setup):
    gpu_profile(setup)  # the cluster at 127.0.0.1:9 answers nothing: its reading is unusable
    assert create(alice, setup, hardware_profile=setup.profile.pk, accelerator_count=1).status_code == 201


def _draft(caps, spec, **fields) -> EndpointDraft:
    hardware = spec.get("hardware") or {}
    return EndpointDraft(
        name=spec["name"], namespace=spec["namespace"], model_format="sklearn", storage_uri=spec["model"]["storage_uri"],
        deployment_mode=spec["deployment_mode"], hardware=HardwareLimits(
            name="gpu", accelerator_resource="", pod_fields=tuple(
                name for name, key in (("nodeSelector", "node_selector"), ("tolerations", "tolerations"))
                if hardware.get(key))) if hardware else None,
        available_runtimes=catalog.BUILT_IN_RUNTIMES, capabilities=caps,
        manifest_spec=reconcile.render(spec)["spec"], cluster_name="sandbox", **fields)


def test_the_sandbox_agrees_knative_refuses_what_the_console_refuses_and_deploys_what_it_accepts(sandbox):
    hardware = {"node_selector": {"kubernetes.io/hostname": "cpu-node-2"}, "tolerations": []}
    with ClusterClient.for_url(sandbox.url) as client:
        caps = read_capabilities(client, namespaces=["default"])
        knative = make_spec(name="pinned", namespace="default", hardware=hardware)
        with pytest.raises(Exception) as refused:
            validate_endpoint(_draft(caps, knative))
        assert "config-features kubernetes.podspec-nodeselector is disabled" in str(refused.value)
        client.apply(reconcile.render(knative, caps))
        sandbox.wait_for(lambda: any(c.get("reason") == "ReconcileFailed" for c in
                                     ((sandbox.isvc("default", "pinned") or {}).get("status") or {})
                                     .get("conditions") or []), message="Knative's refusal")
        assert not _ready(sandbox.isvc("default", "pinned"))

        standard = make_spec(name="raw", namespace="default", deployment_mode="Standard", hardware=hardware)
        validate_endpoint(_draft(caps, standard))
        client.apply(reconcile.render(standard, caps))
        sandbox.wait_ready("default", "raw")


# --- 4. Knative's maxima ------------------------------------------------------------------------


def test_a_timeout_above_knatives_maximum_is_refused_in_knative_mode_only(alice, setup):
    on_cluster(setup, reading(defaults={"max-revision-timeout-seconds": "600"}))
    response = create(alice, setup, timeout_seconds=900)
    assert response.status_code == 400
    [message] = response.json()["errors"]["timeout_seconds"]
    assert "(600 s, max-revision-timeout-seconds in knative-serving/config-defaults)" in message
    assert create(alice, setup, timeout_seconds=600).status_code == 201
    assert create(alice, setup, name="raw", timeout_seconds=900, deployment_mode="Standard").status_code == 201


def test_container_concurrency_above_the_clusters_limit_is_refused(alice, setup):
    on_cluster(setup, reading(defaults={"container-concurrency-max-limit": "50"}))
    response = create(alice, setup, container_concurrency=100)
    assert response.status_code == 400
    assert "container-concurrency-max-limit" in response.json()["errors"]["container_concurrency"][0]
    assert create(alice, setup, container_concurrency=50).status_code == 201


# --- 5. oci:// needs modelcar ---------------------------------------------------------------------


def _oci_version(alice, setup):
    return model_version_create(actor=alice, model=setup.model, storage_uri="oci://registry.example/scorer:3",
                                model_format="sklearn", input_signature=setup.v1.input_signature)


def test_an_oci_uri_on_a_cluster_without_modelcar_is_refused_naming_the_setting(alice, setup):
    on_cluster(setup, reading(modelcar=False))
    version = _oci_version(alice, setup)
    response = create(alice, setup, model_version=version.pk)
    assert response.status_code == 400
    [message] = response.json()["errors"]["model_version"]
    assert "storageInitializer.enableModelcar is false in kserve/inferenceservice-config" in message
    on_cluster(setup, reading(modelcar=True))
    assert create(alice, setup, model_version=version.pk).status_code == 201


@pytest.mark.shared
def test_the_sandbox_agrees_an_oci_uri_fails_without_modelcar_and_deploys_with_it(sandbox):
    spec = make_spec(namespace="default", model={**make_spec()["model"], "storage_uri": "oci://registry.example/m:1"})
    with release_sandbox("0.13.1") as old, ClusterClient.for_url(old.url) as client:
        caps = read_capabilities(client, namespaces=["default"])
        assert caps.modelcar is False
        with pytest.raises(Exception, match="enableModelcar"):
            validate_endpoint(_draft(caps, spec))
        client.apply(reconcile.render(spec, caps))
        failed = old.wait_for(lambda: (((old.isvc("default", "iris") or {}).get("status") or {})
                                       .get("modelStatus") or {}).get("lastFailureInfo"), message="the failure")
        assert failed["reason"] == "ModelLoadFailed"
    with ClusterClient.for_url(sandbox.url) as client:
        caps = read_capabilities(client, namespaces=["default"])
        assert caps.modelcar is True
        validate_endpoint(_draft(caps, spec))
        client.apply(reconcile.render(spec, caps))
        sandbox.wait_ready("default", "iris")


# --- 6. accelerators KServe does not take for a GPU -----------------------------------------------


def test_a_non_nvidia_accelerator_with_a_gpu_image_runtime_is_warned_about(alice, setup):
    on_cluster(setup, reading())
    HardwareProfile.objects.filter(pk=setup.profile.pk).update(accelerator_resource="amd.com/gpu")
    version = model_version_create(actor=alice, model=setup.model, storage_uri="s3://models/scorer/pt",
                                   model_format="pytorch", input_signature=setup.v1.input_signature)
    body = plan_new(alice, setup, model_version=version.pk, hardware_profile=setup.profile.pk,
                    accelerator_count=1, deployment_mode="Standard")
    [warning] = [w for w in body["warnings"] if "does not treat as a GPU" in w]
    assert "amd.com/gpu" in warning and "kserve-torchserve" in warning and "runs its CPU image" in warning
    HardwareProfile.objects.filter(pk=setup.profile.pk).update(accelerator_resource="nvidia.com/gpu")
    body = plan_new(alice, setup, model_version=version.pk, hardware_profile=setup.profile.pk,
                    accelerator_count=1, deployment_mode="Standard")
    assert not [w for w in body["warnings"] if "does not treat as a GPU" in w]


# --- 7. a canary needs a rolled-out revision ------------------------------------------------------


def test_a_canary_at_creation_is_refused_and_accepted_once_the_primary_rolled_out(alice, setup):
    on_cluster(setup, reading())
    response = create(alice, setup, canary_version=setup.v2.pk, canary_traffic_percent=10)
    assert response.status_code == 400
    [message] = response.json()["errors"]["canary_version"]
    assert "deploy the primary first, then start the canary" in message
    assert create(alice, setup).status_code == 201
    endpoint = Endpoint.objects.get(name="scorer")
    patch = api(alice).patch(f"{LIST}{endpoint.pk}/", {"canary_version": setup.v2.pk,
                                                       "canary_traffic_percent": 10}, format="json")
    assert patch.status_code == 400  # still never applied
    EndpointStatus.objects.filter(endpoint=endpoint).update(applied_generation=1)
    patch = api(alice).patch(f"{LIST}{endpoint.pk}/", {"canary_version": setup.v2.pk,
                                                       "canary_traffic_percent": 10}, format="json")
    assert patch.status_code == 200, patch.content


def test_kserves_self_split_is_shown_as_one_revision_with_all_the_traffic():
    entries = [{"revisionName": "iris-predictor-00001", "percent": 10, "latestRevision": True, "tag": "latest"},
               {"revisionName": "iris-predictor-00001", "percent": 90, "latestRevision": False, "tag": "prev"}]
    assert revision_traffic(entries) == [{"revisionName": "iris-predictor-00001", "percent": 100,
                                          "latestRevision": True, "tag": "latest, prev"}]
    split = [{"revisionName": "b", "percent": 10, "latestRevision": True},
             {"revisionName": "a", "percent": 90, "latestRevision": False, "tag": "prev"}]
    assert revision_traffic(split) == split


def test_the_sandbox_agrees_a_canary_at_creation_splits_nothing(sandbox):
    spec = make_spec(namespace="default", canary={"version_id": 12, "version": 2,
                                                  "storage_uri": "s3://models/iris/2", "traffic_percent": 10})
    with ClusterClient.for_url(sandbox.url) as client:
        caps = read_capabilities(client, namespaces=["default"])
        with pytest.raises(Exception, match="deploy the primary first"):
            validate_endpoint(_draft(caps, spec, canary_version_model_id=1, primary_model_id=1,
                                     canary_storage_uri="s3://models/iris/2", canary_traffic_percent=10))
        client.apply(reconcile.render(spec, caps))
        ready = sandbox.wait_for(lambda: _ready(obj := sandbox.isvc("default", "iris")) and (
            (obj["status"].get("components") or {}).get("predictor") or {}).get("traffic") and obj,
            message="the first revision's traffic")
        shown = observe(ready).traffic
        assert len({t["revisionName"] for t in shown}) == len(shown) == 1
        assert shown[0]["percent"] == 100


# --- 8. bookkeeping annotations on pods -----------------------------------------------------------


def test_when_the_cluster_copies_the_bookkeeping_annotations_every_change_restarts_pods(alice, setup):
    on_cluster(setup, reading(disallowed=()))
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                               deployment_mode="Standard", max_replicas=2)
    proposed = Endpoint.objects.get(pk=endpoint.pk)
    proposed.max_replicas = 3  # in Standard mode only the HPA changes
    plan, _ = plan_for(proposed, current=Endpoint.objects.get(pk=endpoint.pk))
    assert plan.restart
    assert any("every change restarts the pods" in reason for reason in plan.restart_reasons)
    assert any("serviceAnnotationDisallowedList" in warning for warning in plan.warnings)

    on_cluster(setup, reading())
    plan, _ = plan_for(proposed, current=Endpoint.objects.get(pk=endpoint.pk))
    assert not plan.restart and not plan.warnings


def test_the_endpoint_page_says_what_logging_loses_on_the_cluster(client, alice, setup):
    on_cluster(setup, reading(release=(0, 13), fields=[f for f in FIELDS if "metadata" not in f]))
    assert create(alice, setup, logging_mode="all").status_code == 201
    client.force_login(alice)
    page = client.get(reverse("endpoints:endpoint-configuration",
                              kwargs={"project": setup.project.name, "name": "scorer"}))
    assert page.status_code == 200
    assert "does not know logger.metadataHeaders, logger.metadataAnnotations" in page.content.decode()
