"""The reconciler against the sandbox cluster over real HTTP: endpoints converge to what users
asked, status is read back truthfully, and out-of-band edits are repaired and audited."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit.models import AuditEvent
from endpoints.models import Endpoint, EndpointStatus, ReconcileAlert, Revision
from endpoints.services.alerts import alert_resolve
from endpoints.services.apply import endpoint_apply
from endpoints.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_promote_canary,
    endpoint_rollback,
    endpoint_update,
)
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.reconciler import reconcile_cluster
from endpoints.services.registry import model_version_create
from tests.endpoints.endpoint_factories import deploy_setup

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(sandbox, alice):
    return deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")


def _create(setup, alice, capture, name="scorer", **config):
    config.setdefault("deployment_mode", "Knative")
    with capture(execute=True):
        return endpoint_create(actor=alice, project=setup.project, name=name, model_version=setup.v1,
                               **config)


def _status(endpoint) -> EndpointStatus:
    return EndpointStatus.objects.get(pk=endpoint.pk)


def _sync(endpoint) -> str:
    return endpoint_sync_status(endpoint_id=endpoint.pk)


def _applies(sandbox, name: str) -> int:
    return len([r for r in sandbox.server.requests() if r.verb == "patch" and r.resource == "inferenceservices"
                and r.name == name and not r.dry_run])


def test_created_endpoint_is_applied_and_becomes_ready(sandbox, setup, alice, django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    live = sandbox.wait_ready("fraud", "scorer")
    assert live["metadata"]["annotations"]["inference-console.io/generation"] == "1"
    assert _sync(endpoint) == "Ready"
    status = _status(endpoint)
    assert status.ready is True
    assert status.url == "http://scorer.fraud.example.com"
    assert status.applied_generation == 1
    assert status.observed_runtime == "kserve-sklearnserver"
    assert Revision.objects.get(endpoint=endpoint, generation=1).outcome == Revision.Outcome.APPLIED


def test_edit_reapplies_with_the_new_generation(sandbox, setup, alice, django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    sandbox.wait_ready("fraud", "scorer")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_update(actor=alice, endpoint=endpoint, max_replicas=4)
    live = sandbox.wait_for(lambda: (o := sandbox.isvc("fraud", "scorer"))
                            and o["spec"]["predictor"]["maxReplicas"] == 4 and o)
    assert live["metadata"]["annotations"]["inference-console.io/generation"] == "2"
    assert _status(endpoint).applied_generation == 2
    assert list(Revision.objects.filter(endpoint=endpoint).values_list("generation", "outcome")) == [
        (2, "applied"), (1, "superseded")]


def test_canary_splits_traffic_in_status(sandbox, setup, alice, django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    sandbox.wait_ready("fraud", "scorer")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_update(actor=alice, endpoint=endpoint, canary_version=setup.v2, canary_traffic_percent=20)

    def split():
        obj = sandbox.isvc("fraud", "scorer")
        traffic = ((obj.get("status") or {}).get("components") or {}).get("predictor", {}).get("traffic") or []
        return traffic if len(traffic) == 2 else None

    traffic = sandbox.wait_for(split, message="a canary traffic split")
    assert sorted(t["percent"] for t in traffic) == [20, 80]

    def serving_revisions():
        pods = sandbox.store.list("pods", "fraud", label_selector="serving.kserve.io/inferenceservice=scorer")
        return sorted(p["metadata"]["name"].rsplit("-deployment-", 1)[0] for p in pods
                      if p["status"]["phase"] == "Running")

    # Both revisions of the split have running pods (what `kubectl get pods` shows).
    assert serving_revisions() == sorted(t["revisionName"] for t in traffic)
    _sync(endpoint)
    assert sorted(t["percent"] for t in _status(endpoint).traffic) == [20, 80]
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_promote_canary(actor=alice, endpoint=endpoint)
    sandbox.wait_for(lambda: len(split() or []) == 0 and sandbox.isvc("fraud", "scorer")["status"]["components"]
                     ["predictor"]["traffic"][0]["percent"] == 100, message="promotion to 100%")
    # After the promotion only the promoted revision keeps pods.
    sandbox.wait_for(lambda: len(serving_revisions()) == 1, message="the old revision's pods to go")


def test_delete_removes_the_inference_service_then_the_endpoint(sandbox, setup, alice,
                                                                 django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    sandbox.wait_ready("fraud", "scorer")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_delete(actor=alice, endpoint=endpoint)
    sandbox.wait_for(lambda: sandbox.isvc("fraud", "scorer") is None, message="the finalizer to be removed")
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    assert AuditEvent.objects.filter(action="endpoint.deleted", target_id=str(endpoint.pk)).exists()


def test_api_rejection_marks_the_endpoint_failed_with_the_apis_message(sandbox, setup, alice,
                                                                        django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    sandbox.wait_ready("fraud", "scorer")
    # A generation whose stored manifest the API server refuses (422 from schema validation).
    with django_capture_on_commit_callbacks(execute=False):
        endpoint_update(actor=alice, endpoint=endpoint, max_replicas=5)
    revision = Revision.objects.get(endpoint=endpoint, generation=2)
    manifest = revision.manifest
    manifest["spec"]["predictor"]["logger"] = {"mode": "everything", "url": "http://x/"}
    Revision.objects.filter(pk=revision.pk).update(manifest=manifest)
    assert endpoint_apply(endpoint_id=endpoint.pk) == "failed"
    status = _status(endpoint)
    assert status.phase == "Failed"
    assert "422" in status.last_error and "spec.predictor.logger.mode" in status.last_error
    assert Revision.objects.get(pk=revision.pk).outcome == Revision.Outcome.FAILED
    # The periodic pass keeps reporting Failed: what runs is the older generation.
    reconcile_cluster(cluster=setup.cluster)
    assert _status(endpoint).phase == "Failed"


def test_server_errors_are_retried_until_the_apply_succeeds(sandbox, setup, alice,
                                                            django_capture_on_commit_callbacks):
    from endpoints.cluster import TransientClusterError

    with django_capture_on_commit_callbacks(execute=False):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer",
                                   model_version=setup.v1, deployment_mode="Knative")
    sandbox.server.faults.fail_next(3, status=503, verb="patch")
    attempts = 0
    while True:
        attempts += 1
        try:
            # Each delivery of the task is one attempt; the same task id retries.
            result = endpoint_apply(endpoint_id=endpoint.pk, claimant="task-1")
        except TransientClusterError:
            status = _status(endpoint)
            assert status.last_reconcile_result == "retrying"
            assert "503" in status.last_error
            assert status.reconcile_claimed_by == "", "the claim is released for the retry"
            continue
        break
    assert (attempts, result) == (4, "applied")
    sandbox.wait_ready("fraud", "scorer")


def test_reconcile_task_retries_transient_errors_with_backoff_and_is_redelivered_if_its_worker_dies():
    from endpoints.cluster import TransientClusterError
    from endpoints.tasks import reconcile_endpoint_task

    assert TransientClusterError in reconcile_endpoint_task.autoretry_for
    assert reconcile_endpoint_task.retry_backoff and reconcile_endpoint_task.retry_jitter
    assert reconcile_endpoint_task.acks_late and reconcile_endpoint_task.reject_on_worker_lost


def test_timeouts_count_as_transient(sandbox, setup, alice, django_capture_on_commit_callbacks):
    from endpoints.cluster import ClusterClient, TransientClusterError

    with django_capture_on_commit_callbacks(execute=False):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer",
                                   model_version=setup.v1, deployment_mode="Knative")
    sandbox.server.faults.drop_next(1, verb="patch")
    with pytest.raises(TransientClusterError):
        endpoint_apply(endpoint_id=endpoint.pk, claimant="task-1")
    assert endpoint_apply(endpoint_id=endpoint.pk, claimant="task-1") == "applied"
    assert isinstance(ClusterClient, type)


def test_unreachable_cluster_gives_unknown_and_keeps_desired_state(sandbox, setup, alice,
                                                                   django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    sandbox.wait_ready("fraud", "scorer")
    setup.cluster.api_url = "http://127.0.0.1:9"
    setup.cluster.save()
    report = reconcile_cluster(cluster=setup.cluster)
    assert report["errors"]
    assert _status(endpoint).phase == "Unknown"
    # The user can still change what they want; it converges once the cluster is back.
    with django_capture_on_commit_callbacks(execute=False):
        endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    setup.cluster.api_url = sandbox.url
    setup.cluster.save()
    reconcile_cluster(cluster=setup.cluster)
    live = sandbox.wait_for(lambda: (o := sandbox.isvc("fraud", "scorer")) and
                            o["spec"]["predictor"]["maxReplicas"] == 3 and o)
    assert live["metadata"]["annotations"]["inference-console.io/generation"] == "2"
    sandbox.wait_ready("fraud", "scorer")
    reconcile_cluster(cluster=setup.cluster)
    assert _status(endpoint).phase == "Ready"


def test_out_of_band_edit_is_corrected_and_audited_but_webhook_defaulting_is_not(
        sandbox, setup, alice, django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    live = sandbox.wait_ready("fraud", "scorer")
    # The simulated webhook added its defaulting annotation: not drift.
    assert live["metadata"]["annotations"]["modelFormat"] == "sklearn"
    report = reconcile_cluster(cluster=setup.cluster)
    assert report["drift_corrected"] == 0 and report["applied"] == 0
    # Someone scales the endpoint by hand.
    sandbox.store.patch("inferenceservices", "fraud", "scorer", {"spec": {"predictor": {"maxReplicas": 9}}},
                        manager="kubectl-edit")
    report = reconcile_cluster(cluster=setup.cluster)
    assert report["drift_corrected"] == 1
    assert sandbox.isvc("fraud", "scorer")["spec"]["predictor"]["maxReplicas"] == 1
    event = AuditEvent.objects.get(action="endpoint.drift_corrected")
    assert event.details["old"] == {"spec.predictor.maxReplicas": 9}
    assert event.details["new"] == {"spec.predictor.maxReplicas": 1}
    assert _status(endpoint).drift_corrections == 1


def test_unchanged_fleet_costs_one_list_per_namespace_and_no_writes(sandbox, setup, alice,
                                                                    django_capture_on_commit_callbacks):
    _create(setup, alice, django_capture_on_commit_callbacks, name="a")
    _create(setup, alice, django_capture_on_commit_callbacks, name="b")
    sandbox.wait_ready("fraud", "a")
    sandbox.wait_ready("fraud", "b")
    reconcile_cluster(cluster=setup.cluster)  # settle statuses
    sandbox.server.clear_requests()
    reconcile_cluster(cluster=setup.cluster)
    verbs = [(r.verb, r.resource) for r in sandbox.server.requests()]
    assert verbs == [("list", "inferenceservices")]


def test_missing_object_is_applied_again(sandbox, setup, alice, django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    sandbox.wait_ready("fraud", "scorer")
    sandbox.store.remove_finalizer("inferenceservices", "fraud", "scorer", "inferenceservice.finalizers")
    sandbox.store.delete("inferenceservices", "fraud", "scorer")
    sandbox.wait_for(lambda: sandbox.isvc("fraud", "scorer") is None, message="deletion")
    report = reconcile_cluster(cluster=setup.cluster)
    assert report["applied"] == 1
    sandbox.wait_ready("fraud", "scorer")
    assert _status(endpoint).applied_generation == 1


def _orphan(sandbox, name, instance="default"):
    sandbox.store.create({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "fraud",
                     "labels": {"app.kubernetes.io/managed-by": "inference-console",
                                "inference-console.io/instance": instance}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://m/x"}}},
    })


def test_orphans_within_the_cap_are_deleted(sandbox, setup):
    for i in range(3):
        _orphan(sandbox, f"orphan-{i}")
    _orphan(sandbox, "other-console", instance="staging")
    report = reconcile_cluster(cluster=setup.cluster)
    assert report["deleted"] == 3
    sandbox.wait_for(lambda: all(sandbox.isvc("fraud", f"orphan-{i}") is None for i in range(3)),
                     message="orphans removed")
    assert sandbox.isvc("fraud", "other-console") is not None, "another console's object is never touched"
    assert AuditEvent.objects.filter(action="isvc.delete_orphan").count() == 3


def test_a_pass_that_would_delete_more_than_the_cap_deletes_nothing_and_alerts(sandbox, setup):
    for i in range(12):
        _orphan(sandbox, f"orphan-{i}")
    report = reconcile_cluster(cluster=setup.cluster, max_deletions=10)
    assert report["deleted"] == 0
    assert len(sandbox.store.list("inferenceservices", "fraud")) == 12
    alert = ReconcileAlert.objects.get(cluster=setup.cluster, resolved_at__isnull=True)
    assert alert.kind == "deletion_cap"
    assert "12" in alert.message
    # A second pass keeps one alert, not a new one each time.
    reconcile_cluster(cluster=setup.cluster, max_deletions=10)
    assert ReconcileAlert.objects.filter(cluster=setup.cluster).count() == 1


def test_resolving_an_alert_records_it_once_and_the_next_pass_over_the_cap_raises_a_new_one(sandbox, setup,
                                                                                            admin_user):
    for i in range(12):
        _orphan(sandbox, f"orphan-{i}")
    reconcile_cluster(cluster=setup.cluster, max_deletions=10)
    alert = ReconcileAlert.objects.get(cluster=setup.cluster)
    stale = ReconcileAlert.objects.get(pk=alert.pk)  # the same alert as another admin's page holds it

    assert alert_resolve(actor=admin_user, alert=alert) is True
    assert alert_resolve(actor=admin_user, alert=stale) is False
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    resolved = AuditEvent.objects.filter(action="reconcile.alert_resolved")
    assert resolved.count() == 1
    assert resolved.get().actor_name == "admin" and resolved.get().details["alert_id"] == alert.pk

    reconcile_cluster(cluster=setup.cluster, max_deletions=10)
    assert ReconcileAlert.objects.filter(cluster=setup.cluster, resolved_at__isnull=True).exclude(
        pk=alert.pk).count() == 1


def test_changing_the_deployment_mode_out_of_band_is_denied_by_the_webhook(sandbox, setup, alice,
                                                                            django_capture_on_commit_callbacks):
    _create(setup, alice, django_capture_on_commit_callbacks)
    sandbox.wait_ready("fraud", "scorer")
    from endpoints.sandbox.errors import ApiError

    with pytest.raises(ApiError) as excinfo:
        sandbox.store.patch("inferenceservices", "fraud", "scorer",
                            {"metadata": {"annotations": {"serving.kserve.io/deploymentMode": "Standard"}}})
    assert excinfo.value.code == 403
    assert "deploymentMode cannot be changed" in excinfo.value.message


@pytest.mark.parametrize(
    ("storage_uri", "reason"),
    [("s3://missing-bucket/model", "ModelLoadFailed")],
)
def test_unreachable_storage_fails_with_the_controllers_reason(sandbox, setup, alice, storage_uri, reason,
                                                               django_capture_on_commit_callbacks):
    version = model_version_create(actor=alice, model=setup.model, storage_uri=storage_uri,
                                   model_format="sklearn")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="broken",
                                   model_version=version, deployment_mode="Knative")
    sandbox.wait_for(lambda: ((sandbox.isvc("fraud", "broken") or {}).get("status") or {})
                     .get("modelStatus", {}).get("lastFailureInfo"), message="a load failure")
    assert _sync(endpoint) == "Failed"
    status = _status(endpoint)
    assert status.model_status["lastFailureInfo"]["reason"] == reason
    from endpoints import status as status_reading

    with setup.client() as client:
        why = status_reading.explain(client.get("InferenceService", "fraud", "broken"),
                                     client.events_for("fraud", "broken"), client.pods_for("fraud", "broken"))
    assert any("ModelLoadFailed" in line for line in why)
    assert any("CrashLoopBackOff" in line for line in why)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_apply_a_generation_once(sandbox, alice):
    from django.test.utils import CaptureQueriesContext  # noqa: F401  (keeps the import local)

    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                               deployment_mode="Knative")
    # endpoint_create enqueued a task after commit (eager): it applied generation 1 already.
    sandbox.wait_ready("fraud", "scorer")
    with_changes = endpoint_update(actor=alice, endpoint=endpoint, max_replicas=2)
    sandbox.server.clear_requests()
    # The eager task above applied generation 2; now simulate duplicate deliveries of a
    # redelivered message racing each other on generation 2 again after a claim reset.
    EndpointStatus.objects.filter(pk=endpoint.pk).update(applied_generation=1, last_reconcile_result="",
                                                         reconcile_claimed_generation=1)
    sandbox.server.faults.latency(0.2)
    results = []

    def deliver(claimant):
        try:
            results.append(endpoint_apply(endpoint_id=with_changes.pk, claimant=claimant))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(f"task-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sandbox.server.faults.clear()
    assert sorted(results) == ["applied", "skipped", "skipped", "skipped"]
    assert _applies(sandbox, "scorer") == 1


def test_description_only_edit_is_audited_without_a_new_generation(setup, alice,
                                                                    django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    endpoint_update(actor=alice, endpoint=endpoint, description="Scores card payments")
    endpoint.refresh_from_db()
    assert endpoint.generation == 1
    event = AuditEvent.objects.filter(action="endpoint.update").latest("id")
    assert event.details == {"old": {"description": ""}, "new": {"description": "Scores card payments"}}


def test_rollback_to_the_current_configuration_adds_no_generation(setup, alice,
                                                                   django_capture_on_commit_callbacks):
    endpoint = _create(setup, alice, django_capture_on_commit_callbacks)
    revision = Revision.objects.get(endpoint=endpoint, generation=1)
    endpoint_rollback(actor=alice, endpoint=endpoint, revision=revision)
    endpoint.refresh_from_db()
    assert endpoint.generation == 1


def test_endpoint_page_explains_why_it_is_not_ready(sandbox, setup, alice, client,
                                                    django_capture_on_commit_callbacks):
    from django.urls import reverse

    from tests.endpoints.endpoint_factories import grant

    version = model_version_create(actor=alice, model=setup.model, storage_uri="gs://unreachable/m",
                                   model_format="sklearn")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="broken",
                                   model_version=version, deployment_mode="Knative")
    sandbox.wait_for(lambda: ((sandbox.isvc("fraud", "broken") or {}).get("status") or {})
                     .get("modelStatus", {}).get("lastFailureInfo"), message="a load failure")
    assert _sync(endpoint) == "Failed"
    grant(alice, setup.project, "view")
    client.force_login(alice)
    page = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "broken"}))
    body = page.content.decode()
    assert "Why it is not ready" in body
    assert "ModelLoadFailed" in body
    assert "storage-initializer" in body
    # Once healthy again, the explanation goes away.
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_update(actor=alice, endpoint=endpoint, model_version=setup.v1)
    sandbox.wait_for(lambda: (o := sandbox.isvc("fraud", "broken")) and o["spec"]["predictor"]["model"]["storageUri"]
                     == setup.v1.storage_uri, message="the fix to be applied")
    sandbox.wait_ready("fraud", "broken")
    assert _sync(endpoint) == "Ready"
    assert EndpointStatus.objects.get(pk=endpoint.pk).explanation == []
