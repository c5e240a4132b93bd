"""The cluster's runtimes are the source of truth: auto-selection, the wizard's choices and
validation use the runtimes installed on the project's cluster (with the formats, versions and
priorities declared there), and a runtime an admin installed with kubectl appears without
touching the console."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from endpoints import selectors
from endpoints.models import ServingRuntime
from endpoints.services.capabilities import cluster_discover
from endpoints.services.endpoints import endpoint_create
from endpoints.services.platform import runtime_update
from endpoints.services.registry import model_version_create
from tests.endpoints.endpoint_factories import deploy_setup, grant
from tests.fixtures.kube import Sandbox, make_kubectl, release_sandbox

pytestmark = pytest.mark.django_db

TEAM_RUNTIME = """
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: team-sklearn, namespace: fraud}
spec:
  supportedModelFormats: [{name: sklearn, version: "1", autoSelect: true, priority: 5}]
  protocolVersions: [v1, v2]
  containers: [{name: kserve-container, image: registry.local/team/sklearn:2}]
"""


def _preview(client, version, protocol="v1", runtime=""):
    return client.get(reverse("endpoints:runtime-preview"),
                      {"model_version": version.pk, "protocol": protocol, "runtime": runtime}).text


def test_a_runtime_installed_with_kubectl_shows_up_in_the_wizard_and_is_selected_as_kserve_would(
        sandbox, alice, client, tmp_path, django_capture_on_commit_callbacks):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    grant(alice, setup.project, "view", "deploy")
    make_kubectl(sandbox.server, tmp_path / "home")("apply", "-f", "-", input=TEAM_RUNTIME)
    cluster_discover(cluster=setup.cluster)

    row = ServingRuntime.objects.get(name="team-sklearn")
    assert row.discovered and row.installed_on == setup.cluster and row.installed_namespace == "fraud"
    assert not row.console_installs and row.supported_formats[0]["priority"] == 5
    event = AuditEvent.objects.get(action="runtime.discovered")
    # The console's catalog lacks KServe's multi-node runtime too: it is discovered alike.
    assert event.details == {"added": ["kserve-huggingfaceserver-multinode", "team-sklearn"]}

    client.force_login(alice)
    form = client.get(reverse("endpoints:endpoint-create")).text
    assert "team-sklearn (sklearn; v1, v2; installed in namespace fraud on cluster c-fraud)" in form
    # Auto-selection as KServe does it: a namespace runtime comes before the cluster ones.
    assert "KServe will pick <strong>team-sklearn</strong>" in _preview(client, setup.v1)

    with django_capture_on_commit_callbacks(execute=True):
        endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                        deployment_mode="Standard")
    live = Sandbox(sandbox.server, sandbox.controller).wait_ready("fraud", "scorer")
    assert live["status"]["servingRuntimeName"] == "team-sklearn", "the cluster agrees with the preview"
    assert sandbox.store.get("servingruntimes", "fraud", "team-sklearn")["metadata"]["managedFields"][0][
        "manager"] != "inference-console", "the console never touches a runtime it did not install"


def test_a_runtime_removed_from_the_cluster_is_no_longer_offered(sandbox, alice, tmp_path):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("apply", "-f", "-", input=TEAM_RUNTIME)
    cluster_discover(cluster=setup.cluster)
    kubectl("delete", "servingruntime", "team-sklearn", "-n", "fraud")
    cluster_discover(cluster=setup.cluster)
    assert ServingRuntime.objects.get(name="team-sklearn").disabled
    assert not selectors.runtime_choices().filter(name="team-sklearn").exists()
    latest = AuditEvent.objects.filter(action="runtime.discovered").order_by("pk").last()
    assert latest.details == {"gone": ["team-sklearn"]}


@pytest.mark.shared
def test_on_kserve_0_16_the_console_refuses_before_apply_what_the_cluster_would_refuse(alice):
    with release_sandbox("0.16.0") as sandbox:
        setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
        cluster_discover(cluster=setup.cluster)
        # vLLM's runtime arrived in 0.20: an explicit choice of it is refused, naming the cluster.
        vllm = ServingRuntime.objects.get(name="kserve-vllmserver")
        llm_version = model_version_create(actor=alice, model=setup.model, storage_uri="hf://org/model",
                                           model_format="vLLM")
        with pytest.raises(Exception) as refused:
            endpoint_create(actor=alice, project=setup.project, name="llm", model_version=llm_version,
                            deployment_mode="Standard", runtime=vllm, protocol="openai")
        assert "Runtime kserve-vllmserver is not installed on cluster c-fraud" in str(refused.value)
        # xgboost 2 on the v1 protocol: 0.16's xgbserver declares xgboost 1, so nothing serves it.
        xgb = model_version_create(actor=alice, model=setup.model, storage_uri="s3://models/xgb/2",
                                   model_format="xgboost", format_version="2")
        with pytest.raises(Exception) as refused:
            endpoint_create(actor=alice, project=setup.project, name="xgb", model_version=xgb,
                            deployment_mode="Standard")
        assert "No runtime would be auto-selected for format 'xgboost'" in str(refused.value)
        # ... and the cluster itself agrees when given the same InferenceService.
        sandbox.store.create({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                              "metadata": {"name": "xgb", "namespace": "fraud"},
                              "spec": {"predictor": {"model": {"modelFormat": {"name": "xgboost", "version": "2"},
                                                               "storageUri": "s3://models/xgb/2"}}}})
        failure = sandbox.wait_for(lambda: ((sandbox.isvc("fraud", "xgb") or {}).get("status") or {})
                                   .get("modelStatus", {}).get("lastFailureInfo"), message="NoSupportingRuntime")
        assert failure["reason"] == "NoSupportingRuntime"


def test_a_discovered_runtime_is_changed_on_its_cluster_not_in_the_console(sandbox, alice, admin_client, tmp_path):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    make_kubectl(sandbox.server, tmp_path / "home")("apply", "-f", "-", input=TEAM_RUNTIME)
    cluster_discover(cluster=setup.cluster)
    row = ServingRuntime.objects.get(name="team-sklearn")
    listing = admin_client.get(reverse("endpoints:runtime-list")).text
    assert "On cluster c-fraud" in listing and "namespace fraud" in listing
    with pytest.raises(ValidationError, match="installed outside the console; change it there"):
        runtime_update(actor=None, runtime=row, protocols=["v2"])
    edit = admin_client.post(reverse("endpoints:runtime-edit", kwargs={"pk": row.pk}),
                             {"description": "Team A's sklearn build", "disabled": "on"})
    assert edit.status_code == 302
    row.refresh_from_db()
    assert row.disabled and row.description == "Team A's sklearn build" and row.protocols == ["v1", "v2"]
