"""A real kubectl against the sandbox cluster: what an operator does by hand is seen, and
an out-of-band edit of a console-managed InferenceService is corrected by the next pass."""

import json

import pytest

from audit.models import AuditEvent
from endpoints.models import EndpointStatus
from endpoints.services.endpoints import endpoint_create
from endpoints.services.reconciler import reconcile_cluster
from tests.endpoints.endpoint_factories import deploy_setup
from tests.fixtures.kube import make_kubectl

pytestmark = pytest.mark.django_db


def test_kubectl_edit_of_a_managed_field_is_corrected_by_the_next_pass(sandbox, alice, tmp_path,
                                                                       django_capture_on_commit_callbacks):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer",
                                   model_version=setup.v1, deployment_mode="Knative", max_replicas=2)
    sandbox.wait_ready("fraud", "scorer")
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")

    listed = kubectl("get", "inferenceservices", "-n", "fraud", "-o", "json")
    names = [item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]]
    assert names == ["scorer"]

    # kubectl edit, with an "editor" that raises maxReplicas in the YAML it is handed.
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/maxReplicas: 2/maxReplicas: 7/' \"$1\"\n")
    editor.chmod(0o755)
    kubectl("edit", "inferenceservice", "scorer", "-n", "fraud", env={"KUBE_EDITOR": str(editor)})
    edited = json.loads(kubectl("get", "isvc", "scorer", "-n", "fraud", "-o", "json").stdout)
    assert edited["spec"]["predictor"]["maxReplicas"] == 7

    report = reconcile_cluster(cluster=setup.cluster)
    assert report["drift_corrected"] == 1
    corrected = json.loads(kubectl("get", "isvc", "scorer", "-n", "fraud", "-o", "json").stdout)
    assert corrected["spec"]["predictor"]["maxReplicas"] == 2
    event = AuditEvent.objects.get(action="endpoint.drift_corrected", target_id=str(endpoint.pk))
    assert event.details["old"]["spec.predictor.maxReplicas"] == 7
    assert EndpointStatus.objects.get(pk=endpoint.pk).drift_corrections == 1

    described = kubectl("describe", "isvc", "scorer", "-n", "fraud").stdout
    assert "InferenceServiceReady" in described
