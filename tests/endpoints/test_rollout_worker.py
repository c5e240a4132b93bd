"""Crash safety of automated rollouts with a real Celery worker on PostgreSQL and Redis: a
worker killed between "decide" (the decision is committed) and "apply" (the new generation)
neither skips nor repeats the step. The decision survives in the database; the redelivered
apply task — and the next evaluation, which finds the pending decision and enqueues it again —
apply it exactly once."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone

from audit.models import AuditEvent
from console.portal.devstack import _configure_sandbox_kserve
from endpoints.models import Endpoint, EndpointStatus, Revision, Rollout, RolloutDecision
from endpoints.services import rollouts
from endpoints.services.capabilities import cluster_discover
from endpoints.tasks import reconcile_endpoint_task
from monitoring.tasks import evaluate_rollouts_task
from tests.endpoints.test_celery_worker import VISIBILITY_TIMEOUT, _database_url, worker_factory  # noqa: F401
from tests.fixtures.kube import wait_for
from tests.monitoring.rollout_helpers import rollout_endpoint, send

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.celery_worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _applied(endpoint_id: int, generation: int) -> bool:
    status = EndpointStatus.objects.filter(pk=endpoint_id).first()
    return bool(status and status.applied_generation >= generation)


def test_a_worker_killed_between_decide_and_apply_neither_skips_nor_repeats_the_step(sandbox, alice,
                                                                                    worker_factory):  # noqa: F811
    first = worker_factory()
    endpoint = rollout_endpoint(alice, api_url=sandbox.url)
    wait_for(lambda: _applied(endpoint.pk, 1), 60, "the worker to apply generation 1", interval=0.25)
    _configure_sandbox_kserve(sandbox.url)
    cluster_discover(cluster=endpoint.project.cluster)
    v2 = endpoint.model_version.model.versions.exclude(pk=endpoint.model_version_id).get()
    rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=v2,
                                     policy={"steps": [10, 50, 100], "min_step_minutes": 1,
                                             "min_step_requests": 30})
    wait_for(lambda: _applied(endpoint.pk, 2), 60, "the worker to apply the first step", interval=0.25)
    # The step has run for ten minutes with healthy traffic.
    started = timezone.now() - timedelta(minutes=10)
    Rollout.objects.filter(pk=rollout.pk).update(step_started_at=started, created_at=started)
    send(endpoint, start=started.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1), minutes=7,
         calls=500, seed=7)
    generation = Endpoint.objects.get(pk=endpoint.pk).generation

    # Hold the endpoint's row: deciding never needs it, applying does (endpoint_update locks it),
    # so the worker decides, commits the decision, and then hangs inside the apply.
    with psycopg.connect(_database_url(), autocommit=False) as holder:
        holder.execute("SELECT id FROM endpoints_endpoint WHERE id = %s FOR UPDATE", [endpoint.pk])
        evaluate_rollouts_task.delay()
        wait_for(lambda: RolloutDecision.objects.filter(rollout=rollout, kind="advance").exists(), 30,
                 "the worker to decide", interval=0.2)
        wait_for(lambda: b"apply_rollout_decision_task" in first.log.read_bytes(), 30,
                 "the worker to take the apply task", interval=0.1)
        time.sleep(0.5)
        first.kill()
        holder.rollback()

    decision = RolloutDecision.objects.get(rollout=rollout, kind="advance")
    assert decision.applied_at is None  # decided, not applied
    assert Endpoint.objects.get(pk=endpoint.pk).generation == generation
    assert Rollout.objects.get(pk=rollout.pk).step_index == 0

    worker_factory()
    evaluate_rollouts_task.delay()  # the next periodic pass meets the pending decision
    wait_for(lambda: RolloutDecision.objects.get(pk=decision.pk).applied_at is not None, VISIBILITY_TIMEOUT + 60,
             "the pending decision to be applied", interval=0.25)
    # Let the redelivered apply message (the killed worker's) arrive too: it must change nothing.
    time.sleep(VISIBILITY_TIMEOUT + 3)

    endpoint.refresh_from_db()
    rollout.refresh_from_db()
    assert endpoint.generation == generation + 1, "the step was applied exactly once"
    assert endpoint.canary_traffic_percent == 50 and rollout.step_index == 1
    assert RolloutDecision.objects.filter(rollout=rollout, kind="advance").count() == 1
    assert AuditEvent.objects.filter(action="rollout.step").count() == 1
    assert not Revision.objects.filter(endpoint=endpoint, generation__gt=generation + 1).exists()
    # The new generation reaches the cluster. A fresh worker's first reconcile imports the
    # Kubernetes client, which can outlast this test's 4 s soft time limit on a busy machine;
    # as the periodic reconcile pass would, ask again until it is applied.
    deadline = time.monotonic() + 120
    while not _applied(endpoint.pk, generation + 1):
        assert time.monotonic() < deadline, "the step never reached the cluster"
        reconcile_endpoint_task.delay(endpoint_id=endpoint.pk)
        for _ in range(60):  # 15 s for this attempt
            if _applied(endpoint.pk, generation + 1):
                break
            time.sleep(0.25)
    assert sandbox.isvc("fraud", "scorer")["spec"]["predictor"]["canaryTrafficPercent"] == 50
