"""RBAC checked against behaviour: every request the console makes to a cluster, across the
flows that talk to one (onboarding a project, deploying with a custom runtime, planning,
following a rollout, the periodic pass with drift repair and orphan deletion, the Operations
tab's pods, events and container logs, deleting an endpoint), must be granted by the ClusterRole — and the role grants nothing beyond them."""

from __future__ import annotations

import pytest

from endpoints import plan
from endpoints.cluster import USER_AGENT
from endpoints.services.capabilities import cluster_discover
from endpoints.services.connections import connection_create
from endpoints.services.endpoints import endpoint_create, endpoint_delete
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.operations import endpoint_operations, endpoint_read_log
from endpoints.services.platform import runtime_create
from endpoints.services.reconciler import reconcile_cluster
from endpoints.services.registry import model_version_create
from tests.deploy.test_manifests import render
from tests.endpoints.endpoint_factories import ModelVersionFactory, deploy_setup

pytestmark = pytest.mark.django_db


def _granted(docs) -> set[tuple[str, str, str]]:
    """Everything the console's ClusterRoles grant (the main one and the optional nodes one)."""
    roles = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].startswith("inference-console")]
    assert {r["metadata"]["name"] for r in roles} == {"inference-console", "inference-console-nodes"}
    return {(group, resource, verb) for role in roles for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def _exercise_every_cluster_flow(sandbox, alice, capture) -> None:
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")  # namespace onboarding
    cluster_discover(cluster=setup.cluster)  # what the cluster can do (CRD, config, runtimes, nodes)
    runtime = runtime_create(actor=alice, name="custom-sklearn", display_name="Custom sklearn",
                             supported_formats=[{"name": "sklearn", "autoSelect": True, "priority": 1}],
                             protocols=["v1", "v2"], container_image="registry.example.com/sk:1")
    with capture(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer",
                                   model_version=setup.v1, deployment_mode="Knative", runtime=runtime)
    sandbox.wait_ready("fraud", "scorer")
    with setup.client() as client:  # the plan page: live object + server dry run
        plan.compute(endpoint, old_spec=None, old_manifest=None, client=client)
    endpoint_sync_status(endpoint_id=endpoint.pk)  # status of a Ready endpoint
    broken_version = model_version_create(actor=alice, model=setup.model,
                                          storage_uri="s3://missing-bucket/m", model_format="sklearn")
    with capture(execute=True):
        broken = endpoint_create(actor=alice, project=setup.project, name="broken",
                                 model_version=broken_version, deployment_mode="Knative")
    sandbox.wait_for(lambda: ((sandbox.isvc("fraud", "broken") or {}).get("status") or {})
                     .get("modelStatus", {}).get("lastFailureInfo"), message="a load failure")
    endpoint_sync_status(endpoint_id=broken.pk)  # why not ready: events and pods
    # The Operations tab: pods, events of the InferenceService and of each pod, a container's log.
    reading = endpoint_operations(endpoint=broken)
    assert reading.pods and not reading.error, reading.error
    log = endpoint_read_log(actor=alice, endpoint=broken, pod=reading.pods[0].name,
                            container="storage-initializer", tail=100)
    assert not log.error, log.error
    sandbox.store.patch("inferenceservices", "fraud", "scorer", {"spec": {"predictor": {"maxReplicas": 5}}})
    sandbox.store.create({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                          "metadata": {"name": "orphan", "namespace": "fraud",
                                       "labels": {"app.kubernetes.io/managed-by": "inference-console",
                                                  "inference-console.io/instance": "default"}},
                          "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                                           "storageUri": "s3://m/x"}}}})
    # A storage connection with a CA bundle: Secret, ServiceAccount and ConfigMap applied before
    # the endpoint, an out-of-band edit repaired, and all three deleted once nothing uses them.
    connection = connection_create(
        actor=alice, project=setup.project, name="private", kind="s3",
        config={"endpoint_url": "https://minio.internal:9000", "ca_bundle": "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                                                            "-----END CERTIFICATE-----"},
        secrets={"access_key_id": "AKIA", "secret_access_key": "s3cr3t"})
    private = ModelVersionFactory(model=setup.model, version=9, storage_uri="s3://private/m", connection=connection)
    with capture(execute=True):
        uses_connection = endpoint_create(actor=alice, project=setup.project, name="private",
                                          model_version=private, deployment_mode="Knative")
    sandbox.store.patch("secrets", "fraud", "ic-private", {"data": {"AWS_SECRET_ACCESS_KEY": "eA=="}})
    report = reconcile_cluster(cluster=setup.cluster)  # list, drift re-apply, orphan delete
    assert report["drift_corrected"] == 1 and report["deleted"] == 1, report
    assert report["connection_objects_repaired"] == 1, report
    with capture(execute=True):
        endpoint_delete(actor=alice, endpoint=endpoint)
        endpoint_delete(actor=alice, endpoint=uses_connection)
    sandbox.wait_for(lambda: sandbox.isvc("fraud", "private") is None, message="the endpoint deleted")
    assert reconcile_cluster(cluster=setup.cluster)["deleted"] == 3  # the connection's objects


def test_cluster_role_grants_exactly_what_the_console_uses(sandbox, alice, django_capture_on_commit_callbacks):
    _exercise_every_cluster_flow(sandbox, alice, django_capture_on_commit_callbacks)
    used = set()
    for r in sandbox.server.requests():
        if not r.user_agent.startswith(USER_AGENT):
            continue
        if not r.resource:  # /version: every authenticated user may read it (system:public-info-viewer)
            assert r.path.rstrip("/") == "/version", r.path
            continue
        resource = r.resource + (f"/{r.subresource}" if r.subresource else "")
        used.add((r.group, resource, r.verb))
        if r.verb == "patch" and r.status == 201:
            # A server-side apply that creates is authorized as create as well as patch by
            # the real API server (Kubernetes API concepts, "patch and apply").
            used.add((r.group, resource, "create"))
    assert used, "the console made no request"
    for overlay in ("dev", "production"):
        granted = _granted(render(overlay))
        assert used - granted == set(), f"{overlay}: used but not granted"
        assert granted - used == set(), f"{overlay}: granted but never used"
