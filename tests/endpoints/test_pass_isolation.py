"""Per-cluster isolation of the periodic passes (issue #25): an error of one cluster is that
cluster's alert, shown on its page, and the pass goes on with the clusters after it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from endpoints.models import Cluster, ClusterCapabilities, ReconcileAlert
from endpoints.services.alerts import isolated
from endpoints.services.capabilities import refresh_all
from endpoints.services.endpoints import endpoint_create
from endpoints.services.reconciler import reconcile_all
from tests.endpoints.endpoint_factories import deploy_setup
from tests.endpoints.registry_factories import ClusterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(sandbox, alice, tmp_path, django_capture_on_commit_callbacks):
    """A broken cluster that sorts first ("a-broken": its kubeconfig no longer parses), then a
    working one with a ready endpoint."""
    kubeconfig = tmp_path / "broken.kubeconfig"
    kubeconfig.write_text("clusters: [this is: not, a kubeconfig\n")
    broken = ClusterFactory(name="a-broken", connection=Cluster.Connection.KUBECONFIG,
                            kubeconfig_path=str(kubeconfig), api_url="")
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                        deployment_mode="Knative")
    sandbox.wait_ready("fraud", "scorer")
    return broken, setup


def test_a_broken_cluster_is_alerted_and_the_pass_corrects_drift_on_the_clusters_after_it(sandbox, fleet):
    broken, setup = fleet
    sandbox.store.patch("inferenceservices", "fraud", "scorer", {"spec": {"predictor": {"maxReplicas": 9}}},
                        manager="kubectl-edit")

    report = reconcile_all()

    assert report["a-broken"] is None
    assert report[setup.cluster.name]["drift_corrected"] == 1
    assert sandbox.isvc("fraud", "scorer")["spec"]["predictor"]["maxReplicas"] == 1
    alert = ReconcileAlert.objects.get(cluster=broken, kind=ReconcileAlert.Kind.RECONCILE_FAILED)
    assert alert.state == ReconcileAlert.State.OPEN
    assert "reconcile pass failed on this cluster" in alert.message
    assert AuditEvent.objects.filter(action="reconcile.alert", target_id=str(broken.pk)).count() == 1
    assert not ReconcileAlert.objects.filter(cluster=setup.cluster).exists()

    # Met again at the next pass: still one alert, not a new one per pass.
    reconcile_all()
    assert ReconcileAlert.objects.filter(cluster=broken).count() == 1


def test_the_alert_clears_when_the_cluster_passes_again(sandbox, fleet):
    broken, _setup = fleet
    reconcile_all()
    Cluster.objects.filter(pk=broken.pk).update(connection=Cluster.Connection.URL, api_url=sandbox.url)

    reconcile_all()

    alert = ReconcileAlert.objects.get(cluster=broken, kind=ReconcileAlert.Kind.RECONCILE_FAILED)
    assert alert.state == ReconcileAlert.State.RESOLVED
    assert AuditEvent.objects.filter(action="reconcile.alert_cleared", target_id=str(broken.pk)).exists()


def test_capability_refresh_reads_the_clusters_after_a_broken_one(sandbox, fleet):
    broken, setup = fleet
    ClusterCapabilities.objects.all().delete()

    assert refresh_all() == 2

    assert not Cluster.objects.get(pk=broken.pk).capabilities_reading.usable
    assert Cluster.objects.get(pk=setup.cluster.pk).capabilities_reading.usable


def test_an_error_inside_a_clusters_share_of_a_pass_is_its_alert_and_clears_later(fleet):
    broken, _setup = fleet

    def fails():
        raise RuntimeError("runtime list has an entry without a name")

    assert isolated(broken, kind=ReconcileAlert.Kind.CAPABILITIES_FAILED, what="capability reading",
                    work=fails) is None
    alert = ReconcileAlert.objects.get(cluster=broken, kind=ReconcileAlert.Kind.CAPABILITIES_FAILED)
    assert "RuntimeError: runtime list has an entry without a name" in alert.message

    assert isolated(broken, kind=ReconcileAlert.Kind.CAPABILITIES_FAILED, what="capability reading",
                    work=lambda: "read") == "read"
    alert.refresh_from_db()
    assert alert.state == ReconcileAlert.State.RESOLVED


def test_the_cluster_page_shows_the_open_alert(client, admin_user, fleet):
    broken, setup = fleet
    reconcile_all()
    client.force_login(admin_user)

    page = client.get(reverse("endpoints:cluster-detail", kwargs={"pk": broken.pk})).content.decode()
    assert "Reconcile pass failed" in page
    assert "reconcile pass failed on this cluster" in page

    healthy = client.get(reverse("endpoints:cluster-detail", kwargs={"pk": setup.cluster.pk})).content.decode()
    assert "Reconcile pass failed" not in healthy


@pytest.mark.postgres
def test_a_cluster_another_pass_is_reconciling_is_skipped_and_its_drift_corrected_once(sandbox, fleet):
    """Beat sends a pass every few seconds and workers run several at once: while one pass holds
    a cluster, another skips it (no second drift event, no second alert), and the cluster is
    reconciled again as soon as the first lets go."""
    import psycopg
    from django.db import connection

    from endpoints.services.reconciler import PASS_LOCK_NAMESPACE

    broken, setup = fleet
    sandbox.store.patch("inferenceservices", "fraud", "scorer", {"spec": {"predictor": {"maxReplicas": 9}}},
                        manager="kubectl-edit")
    params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    with psycopg.connect(autocommit=True, **params) as other_pass:
        other_pass.execute("SELECT pg_advisory_lock(%s, %s)", [PASS_LOCK_NAMESPACE, setup.cluster.pk])
        other_pass.execute("SELECT pg_advisory_lock(%s, %s)", [PASS_LOCK_NAMESPACE, broken.pk])

        report = reconcile_all()

        assert set(report[setup.cluster.name]) == {"skipped"}
        assert set(report["a-broken"]) == {"skipped"}
        assert sandbox.isvc("fraud", "scorer")["spec"]["predictor"]["maxReplicas"] == 9
        assert not AuditEvent.objects.filter(action="endpoint.drift_corrected").exists()
        assert not ReconcileAlert.objects.filter(cluster=broken).exists()

    report = reconcile_all()  # the other pass's connection is gone, and its locks with it
    assert report[setup.cluster.name]["drift_corrected"] == 1
    assert sandbox.isvc("fraud", "scorer")["spec"]["predictor"]["maxReplicas"] == 1
    assert AuditEvent.objects.filter(action="endpoint.drift_corrected").count() == 1
    assert ReconcileAlert.objects.filter(cluster=broken).count() == 1
