"""Thin Celery tasks of the monitoring app: drift computation and retention (both periodic,
see ``CELERY_BEAT_SCHEDULE``). All are idempotent: computing a window again replaces its result
and pruning twice deletes nothing more."""

from __future__ import annotations

from console.celery import idempotent_task
from endpoints.models import Endpoint
from monitoring import services


@idempotent_task
def compute_drift_task(*, endpoint_id: int) -> int:
    """Recompute the drift windows of one endpoint whose hours received traffic."""
    endpoint = Endpoint.objects.select_related("project").filter(pk=endpoint_id).first()
    if endpoint is None:
        return 0
    return len(services.drift_compute_backlog(endpoint=endpoint))


@idempotent_task
def compute_drift_all_task() -> int:
    """Fan out: one drift task per endpoint with new traffic since its last computation."""
    endpoint_ids = services.endpoints_with_drift_backlog()
    for endpoint_id in endpoint_ids:
        compute_drift_task.delay(endpoint_id=endpoint_id)
    return len(endpoint_ids)


@idempotent_task
def prune_monitoring_task() -> dict:
    return services.monitoring_prune()


@idempotent_task
def evaluate_rollouts_task() -> int:
    """Measure every running automated rollout and decide its next step (periodic). Idempotent:
    a decision already made and not yet applied is applied instead of deciding again."""
    from monitoring.rollouts import evaluate_all

    return evaluate_all()
