"""Which endpoints say "answers simulated": on the sandbox, those its data plane reports as
simulated (the SandboxSimulated condition), all of them when the sandbox has no gateway, and by
model format otherwise; never on a real cluster."""

from __future__ import annotations

import pytest
from django.urls import reverse

from endpoints.calling import serving
from endpoints.models import Cluster, EndpointStatus
from tests.console.access_factories import endpoint_in, project_with_model
from tests.endpoints.endpoint_factories import grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint():
    project, _ = project_with_model("fraud")
    Cluster.objects.filter(pk=project.cluster_id).update(kind=Cluster.Kind.SANDBOX, gateway_address="127.0.0.1:8081")
    found = endpoint_in(project, "scorer")
    found.model_version.model_format = "sklearn"
    found.model_version.save()
    found.refresh_from_db()
    return found


def test_a_real_cluster_is_never_labelled_simulated(endpoint):
    Cluster.objects.filter(pk=endpoint.project.cluster_id).update(kind=Cluster.Kind.KUBERNETES)
    endpoint.refresh_from_db()
    endpoint.model_version.model_format = "tensorflow"
    assert serving(endpoint)["simulated"] is False


def test_the_sandbox_serves_sklearn_and_simulates_the_rest(endpoint):
    assert serving(endpoint)["simulated"] is False
    endpoint.model_version.model_format = "huggingface"
    verdict = serving(endpoint)
    assert verdict["simulated"] is True and "huggingface" in verdict["note"]


def test_the_data_planes_condition_wins_and_its_reason_is_shown(endpoint, client, alice):
    EndpointStatus.objects.filter(endpoint=endpoint).update(conditions=[
        {"type": "SandboxSimulated", "status": "True", "reason": "NotDownloadable",
         "message": "simulated: the sandbox cannot download s3://far/away"}])
    endpoint.refresh_from_db()
    verdict = serving(endpoint)
    assert verdict["simulated"] is True and "cannot download s3://far/away" in verdict["note"]
    grant(alice, endpoint.project, "view")
    client.force_login(alice)
    page = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer"}))
    assert "answers simulated" in page.text and "cannot download s3://far/away" in page.text


def test_a_sandbox_without_a_gateway_serves_nothing(endpoint):
    Cluster.objects.filter(pk=endpoint.project.cluster_id).update(gateway_address="")
    endpoint.refresh_from_db()
    assert serving(endpoint)["simulated"] is True
