"""An automated rollout against the sandbox (the fake Kubernetes API server and KServe
controller, over HTTP): a step changes only ``canaryTrafficPercent`` — the Knative
``latestCreatedRevision`` stays the same and the traffic split moves — and the sandbox as KServe
is installed (bookkeeping annotations not disallowed) gets the rollout refused with the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from console.portal.devstack import _configure_sandbox_kserve
from endpoints.services import rollouts
from endpoints.services.capabilities import cluster_discover
from monitoring import rollouts as gates
from tests.monitoring.rollout_helpers import rollout_endpoint, send

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _predictor_status(sandbox) -> dict:
    obj = sandbox.isvc("fraud", "scorer") or {}
    return ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}


def _split(sandbox, percent: int):
    def check():
        status = _predictor_status(sandbox)
        traffic = status.get("traffic") or []
        head = next((t for t in traffic if t.get("latestRevision")), None)
        return status if head is not None and head["percent"] == percent and len(traffic) == 2 else None
    return sandbox.wait_for(check, message=f"a {percent}% canary split")


def test_a_step_moves_traffic_without_a_new_revision(sandbox, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = rollout_endpoint(alice, api_url=sandbox.url)
    sandbox.wait_ready("fraud", "scorer")
    v2 = endpoint.model_version.model.versions.exclude(pk=endpoint.model_version_id).get()

    # KServe as installed copies the bookkeeping annotations onto pods: refused, with the reason.
    cluster_discover(cluster=endpoint.project.cluster)
    with pytest.raises(ValidationError, match="serviceAnnotationDisallowedList"):
        rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=v2)
    # What docs/deploy.md asks of a platform admin (and make run does to its sandbox).
    _configure_sandbox_kserve(sandbox.url)
    cluster_discover(cluster=endpoint.project.cluster)

    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=v2,
                                         policy={"min_step_requests": 30, "steps": [10, 50, 100]})
    before = _split(sandbox, 10)
    created = before["latestCreatedRevision"]

    rollout.refresh_from_db()
    start = rollout.step_started_at.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)
    send(endpoint, start=start, minutes=5.5, calls=500, seed=3)
    now = rollout.step_started_at + timedelta(minutes=7)
    decision = gates.evaluate_rollout(rollout_id=rollout.pk, now=now)
    assert decision.kind == "advance"
    with django_capture_on_commit_callbacks(execute=True):
        rollouts.rollout_apply(decision_id=decision.pk, now=now)
    after = _split(sandbox, 50)
    assert after["latestCreatedRevision"] == created
    live = sandbox.isvc("fraud", "scorer")
    assert live["spec"]["predictor"]["canaryTrafficPercent"] == 50
    endpoint.refresh_from_db()
    assert live["metadata"]["annotations"]["inference-console.io/generation"] == str(endpoint.generation)
