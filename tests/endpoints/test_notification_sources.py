"""Endpoint failures, drift alerts and grants about to expire reach the configured channels —
once per state change, never once per evaluation — besides reconciler alerts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from console.access import grants
from endpoints.models import Notification
from endpoints.services.endpoints import endpoint_create
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.reconciler import reconcile_cluster
from endpoints.services.registry import model_version_create
from monitoring import services as monitoring
from tests.endpoints.endpoint_factories import deploy_setup
from tests.monitoring.helpers import BASE_TIME, monitored_endpoint
from tests.monitoring.test_drift_service import traffic

pytestmark = pytest.mark.django_db


def _events(event: str) -> list[tuple[str, str]]:
    return list(Notification.objects.filter(event=event).order_by("id").values_list("state", "subject"))


def test_an_endpoint_that_fails_is_notified_once_with_the_reason(sandbox, alice, django_capture_on_commit_callbacks):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    version = model_version_create(actor=alice, model=setup.model, storage_uri="s3://missing-bucket/model",
                                   model_format="sklearn")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="broken", model_version=version,
                                   deployment_mode="Knative")
    sandbox.wait_for(lambda: ((sandbox.isvc("fraud", "broken") or {}).get("status") or {})
                     .get("modelStatus", {}).get("lastFailureInfo"), message="a load failure")
    assert endpoint_sync_status(endpoint_id=endpoint.pk) == "Failed"
    for _ in range(3):  # later evaluations of the same failure send nothing
        endpoint_sync_status(endpoint_id=endpoint.pk)
        reconcile_cluster(cluster=setup.cluster)
    sent = Notification.objects.get(event=Notification.Event.ENDPOINT_FAILED)
    assert sent.state == "failed" and sent.project == setup.project
    assert "fraud/broken failed (generation 1)" in sent.subject and "missing-bucket" in sent.body


def test_drift_entering_and_leaving_the_alert_state_is_notified_once_each():
    endpoint = monitored_endpoint()
    hour = timedelta(hours=1)
    traffic(endpoint, at=BASE_TIME)
    monitoring.drift_compute(endpoint=endpoint, start=BASE_TIME, end=BASE_TIME + hour)
    assert _events(Notification.Event.DRIFT_ALERT) == []  # ok from the start: nothing to say
    traffic(endpoint, shift=1.5, at=BASE_TIME + hour, seed=2)
    for _ in range(2):  # computed again (late events): still one notification
        monitoring.drift_compute(endpoint=endpoint, start=BASE_TIME + hour, end=BASE_TIME + 2 * hour)
    traffic(endpoint, shift=1.5, at=BASE_TIME + 2 * hour, seed=3)
    monitoring.drift_compute(endpoint=endpoint, start=BASE_TIME + 2 * hour, end=BASE_TIME + 3 * hour)
    traffic(endpoint, at=BASE_TIME + 3 * hour, seed=4)
    monitoring.drift_compute(endpoint=endpoint, start=BASE_TIME + 3 * hour, end=BASE_TIME + 4 * hour)
    states = [state for state, _ in _events(Notification.Event.DRIFT_ALERT)]
    assert states == ["open", "resolved"]
    opened = Notification.objects.get(event=Notification.Event.DRIFT_ALERT, state="open")
    assert opened.payload["status"] == "alert" and opened.payload["max_psi"] > 0.25


def test_grants_about_to_end_are_notified_once_per_expiry(alice, bob, admin_user):
    setup = deploy_setup(actor=alice, project_name="fraud")
    now = timezone.now()
    soon = grants.grant_create(actor=admin_user, role="caller", target=setup.project, user=bob,
                               reason="Pilot", expires_at=now + timedelta(days=2))
    grants.grant_create(actor=admin_user, role="viewer", target=setup.project, user=alice,
                        reason="Long", expires_at=now + timedelta(days=60))
    assert grants.grants_expiring_notify(now=now) == 1
    assert grants.grants_expiring_notify(now=now + timedelta(hours=1)) == 0  # once per grant and expiry
    sent = Notification.objects.get(event=Notification.Event.GRANT_EXPIRING)
    assert sent.project == setup.project and "user bob" in sent.body and "in 2 days" in sent.subject
    # Replaced by a longer grant (how access pages extend one): the new end is notified when it comes near.
    grants.grant_revoke(actor=admin_user, grant=soon, reason="extended")
    grants.grant_create(actor=admin_user, role="caller", target=setup.project, user=bob, reason="Pilot, extended",
                        expires_at=now + timedelta(days=9))
    assert grants.grants_expiring_notify(now=now + timedelta(days=1)) == 0
    assert grants.grants_expiring_notify(now=now + timedelta(days=3)) == 1
