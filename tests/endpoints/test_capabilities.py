"""What the console reads from a cluster — KServe release, mode spelling, declared fields,
inferenceservice-config, Knative limits, runtimes, accelerators — read from real (sandbox)
clusters playing each KServe release, and how an admin meets it: the cluster page, "Test
connection", and a cluster that cannot be used never saved as enabled."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from endpoints.cluster import ClusterClient
from endpoints.models import Cluster, ClusterCapabilities
from endpoints.services.capabilities import capabilities_for, cluster_discover, read_capabilities
from endpoints.services.platform import cluster_create
from endpoints.services.projects import project_create
from tests.fixtures.kube import KSERVE_RELEASES, make_kubectl, release_sandbox

pytestmark = pytest.mark.django_db


def _read(server, namespaces=("default",)):
    with ClusterClient.for_url(server.url, token=getattr(server, "token", None), timeout=5.0) as client:
        return read_capabilities(client, namespaces=list(namespaces))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- reading a cluster --------------------------------------------------------------------------


def test_the_builtin_sandbox_reads_as_kserve_0_20_with_knative_defaults(sandbox):
    caps = _read(sandbox.server)
    assert caps.usable and caps.release_text == "0.20.0" and caps.release_exact
    assert caps.controller_image == "kserve/kserve-controller:v0.20.0"
    assert caps.mode_values == ("Knative", "Standard") and caps.default_mode == "Knative"
    assert caps.declares("canary") and caps.declares("predictor.logger.metadataHeaders")
    assert not caps.declares("predictor.bogus")
    assert caps.knative is True
    assert not caps.knative_allows("nodeSelector") and not caps.knative_allows("tolerations")
    assert caps.max_revision_timeout == 600 and caps.modelcar is True
    assert caps.accelerators == {"nvidia.com/gpu": 8}
    assert len(caps.cluster_runtimes) == 14 and caps.problems == []
    text = " ".join(caps.implications())
    assert "Knative refuses nodeSelector, tolerations" in text and "600 s" in text


@pytest.mark.shared
@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_each_release_reads_as_itself(release):
    with release_sandbox(release) as sandbox:
        caps = _read(sandbox.server)
    assert caps.release_text == release and caps.release_exact
    old = release in ("0.13.1", "0.14.1", "0.15.2")
    assert caps.mode_values == (("Serverless", "RawDeployment") if old else ("Knative", "Standard"))
    assert caps.declares("predictor.logger.storage") is not old
    assert caps.declares("canary") is (release == "0.20.0")
    assert caps.modelcar is (release not in ("0.13.1", "0.14.1"))
    assert ("kserve-vllmserver" in {r["name"] for r in caps.cluster_runtimes}) is (release == "0.20.0")


def test_without_the_controller_pods_the_release_is_read_off_the_crd(sandbox):
    sandbox.store.delete("pods", "kserve", "kserve-controller-manager-0")
    caps = _read(sandbox.server)
    assert caps.release_text == "0.20 or later" and not caps.release_exact and caps.controller_image == ""


def test_a_cluster_that_does_not_answer_is_unreachable():
    caps = _read(type("S", (), {"url": f"http://127.0.0.1:{_closed_port()}"})())
    assert not caps.reachable and not caps.usable
    assert "cannot reach" in caps.implications()[0]


def test_a_wrong_token_is_refused_credentials(fake_apiserver):
    fake_apiserver.token = "right-token"
    with ClusterClient.for_url(fake_apiserver.url, token="wrong-token", timeout=5.0) as client:
        caps = read_capabilities(client, namespaces=[])
    assert caps.reachable and not caps.authenticated and not caps.usable


def test_without_permission_to_list_nodes_only_the_accelerators_are_unknown(sandbox):
    sandbox.server.faults.fail_next(1, status=403, verb="list", path=r"/api/v1/nodes")
    caps = _read(sandbox.server)
    assert caps.usable and caps.accelerators is None
    assert any("nodes" in p and "not allowed" in p for p in caps.problems)
    assert "accelerator capacity is unknown" in " ".join(caps.implications())


def test_an_admin_enabling_knative_flags_and_a_kubectl_runtime_show_up_in_the_next_reading(sandbox, tmp_path):
    sandbox.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fraud"}})
    kubectl = make_kubectl(sandbox.server, tmp_path / "home")
    kubectl("apply", "-f", "-", input="""
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: team-sklearn, namespace: fraud}
spec:
  supportedModelFormats: [{name: sklearn, version: "1", autoSelect: true, priority: 5}]
  protocolVersions: [v1]
  containers: [{name: kserve-container, image: registry.local/team/sklearn:2}]
""")
    kubectl("patch", "configmap", "config-features", "-n", "knative-serving", "--type", "merge",
            "-p", '{"data": {"kubernetes.podspec-nodeselector": "enabled"}}')
    caps = _read(sandbox.server, namespaces=["fraud"])
    assert [r["name"] for r in caps.runtimes_for("fraud")][0] == "team-sklearn"
    assert caps.namespace_runtimes["fraud"][0]["formats"] == [{"name": "sklearn", "version": "1",
                                                              "autoSelect": True, "priority": 5}]
    assert caps.knative_allows("nodeSelector") and not caps.knative_allows("tolerations")


# --- kept per cluster, fresh enough -----------------------------------------------------------------


def _sandbox_cluster(url: str, **fields) -> Cluster:
    return cluster_create(actor=None, name="lab", kind=Cluster.Kind.SANDBOX, connection=Cluster.Connection.URL,
                          api_url=url, **fields)


def test_a_stale_reading_is_read_again_and_a_fresh_one_is_not(sandbox, settings):
    cluster = _sandbox_cluster(sandbox.url)
    project_create(actor=None, name="fraud", cluster=cluster)
    first = cluster_discover(cluster=cluster)
    assert first.usable and first.capabilities.namespace_runtimes == {}
    sandbox.server.clear_requests()
    capabilities_for(cluster)
    assert sandbox.server.requests() == [], "a fresh reading is used as it is"
    ClusterCapabilities.objects.filter(pk=first.pk).update(read_at=timezone.now() - dt.timedelta(seconds=601))
    capabilities_for(cluster)
    assert any(r.resource == "customresourcedefinitions" for r in sandbox.server.requests())
    assert ClusterCapabilities.objects.get(pk=first.pk).read_at > first.read_at


# --- what an admin sees and does ----------------------------------------------------------------------


def test_test_connection_reads_the_cluster_shows_what_it_implies_and_is_audited(admin_client, admin_user, sandbox):
    cluster = _sandbox_cluster(sandbox.url)
    page = admin_client.get(reverse("endpoints:cluster-detail", kwargs={"pk": cluster.pk}))
    assert "Not read yet" in page.text
    response = admin_client.post(reverse("endpoints:cluster-test", kwargs={"pk": cluster.pk}), follow=True)
    assert "Connected to lab: KServe 0.20.0 found." in response.text
    assert "kserve/kserve-controller:v0.20.0" in response.text
    assert "Knative refuses nodeSelector" in response.text
    assert "kserve-huggingfaceserver" in response.text and "8 × <code>nvidia.com/gpu</code>" in response.text
    event = AuditEvent.objects.get(action="cluster.test_connection")
    assert event.actor_name == admin_user.get_username() and event.details["release"] == "0.20.0"


def test_test_connection_on_an_unreachable_address_says_so(admin_client):
    cluster = _sandbox_cluster(f"http://127.0.0.1:{_closed_port()}", enabled=False)
    response = admin_client.post(reverse("endpoints:cluster-test", kwargs={"pk": cluster.pk}), follow=True)
    assert "Test of lab failed: the cluster did not answer" in response.text
    assert not ClusterCapabilities.objects.get(cluster=cluster).usable


def _cluster_form(**overrides) -> dict:
    data = {"name": "prod", "kind": "kubernetes", "connection": "url", "api_url": "",
            "api_token": "", "ingress_domain": "example.com", "enabled": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_an_unreachable_cluster_is_not_saved_enabled(admin_client):
    url = f"http://127.0.0.1:{_closed_port()}"
    response = admin_client.post(reverse("endpoints:cluster-create"), _cluster_form(api_url=url))
    assert response.status_code == 200
    assert "Not saved as enabled: the cluster did not answer" in response.text
    assert not Cluster.objects.filter(name="prod").exists()
    # Saved disabled, for later: nothing is read.
    response = admin_client.post(reverse("endpoints:cluster-create"), _cluster_form(api_url=url, enabled=None))
    cluster = Cluster.objects.get(name="prod")
    assert response.status_code == 302 and not cluster.enabled
    assert not ClusterCapabilities.objects.filter(cluster=cluster).exists()


def test_a_reachable_cluster_is_saved_with_its_reading(admin_client, sandbox):
    response = admin_client.post(reverse("endpoints:cluster-create"), _cluster_form(api_url=sandbox.url))
    cluster = Cluster.objects.get(name="prod")
    assert response.status_code == 302 and response["Location"].endswith(f"/admin/clusters/{cluster.pk}/")
    assert ClusterCapabilities.objects.get(cluster=cluster).capabilities.release_text == "0.20.0"


@pytest.mark.parametrize("method", ["get", "post"])
def test_only_platform_admins_test_connections(client, django_user_model, sandbox, method):
    cluster = _sandbox_cluster(sandbox.url)
    url = reverse("endpoints:cluster-test", kwargs={"pk": cluster.pk})
    assert getattr(client, method)(url).status_code == 302  # anonymous: sign in first
    user = django_user_model.objects.create_user("mallory", password="pw-mallory-12345")
    client.force_login(user)
    assert getattr(client, method)(url).status_code == 403
    assert getattr(client, method)(reverse("endpoints:cluster-detail", kwargs={"pk": cluster.pk})).status_code == 403
    assert not AuditEvent.objects.filter(action="cluster.test_connection").exists()
    assert not ClusterCapabilities.objects.exists()
