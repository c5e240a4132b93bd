"""Thin Celery tasks: load by primary key, call a service, return."""

from __future__ import annotations

import random

from console.celery import app, idempotent_task
from endpoints.cluster import TransientClusterError
from endpoints.services.apply import endpoint_apply, endpoint_remove
from endpoints.services.capabilities import refresh_all
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.reconciler import reconcile_all

# Transient cluster errors (connection failures, timeouts, 429, 5xx) retry with exponential
# backoff and jitter; permanent ones are recorded by the service as a Failed endpoint.
_RETRY = {
    "autoretry_for": (TransientClusterError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 10,
}
SYNC_INTERVAL_SECONDS = 3
SYNC_ATTEMPTS = 100  # follow a rollout for about five minutes; the periodic pass takes over after


@idempotent_task(bind=True, **_RETRY)
def reconcile_endpoint_task(self, *, endpoint_id: int) -> str:
    result = endpoint_apply(endpoint_id=endpoint_id, claimant=self.request.id or "")
    if result == "applied" and not app.conf.task_always_eager:
        sync_endpoint_status_task.apply_async(kwargs={"endpoint_id": endpoint_id}, countdown=1)
    return result


@idempotent_task
def sync_endpoint_status_task(*, endpoint_id: int, attempt: int = 0) -> str | None:
    """Follow a rollout so the endpoint page shows live progress between periodic passes."""
    phase = endpoint_sync_status(endpoint_id=endpoint_id)
    if phase in ("Pending", "Deploying") and attempt < SYNC_ATTEMPTS and not app.conf.task_always_eager:
        sync_endpoint_status_task.apply_async(kwargs={"endpoint_id": endpoint_id, "attempt": attempt + 1},
                                              countdown=SYNC_INTERVAL_SECONDS)
    return phase


@idempotent_task(**_RETRY)
def delete_endpoint_task(*, endpoint_id: int) -> str:
    return endpoint_remove(endpoint_id=endpoint_id)


@idempotent_task
def reconcile_all_task() -> dict:
    return reconcile_all()


@idempotent_task(**_RETRY)
def sync_connections_task(*, project_id: int) -> dict:
    """Bring a project's namespace to the connection Secrets and ServiceAccounts its endpoints
    need, after a connection changed (rotation, deletion, opt-out)."""
    from endpoints.services.connections import sync_project

    return sync_project(project_id=project_id)


@idempotent_task
def refresh_cluster_capabilities_task() -> int:
    """Re-read every enabled cluster whose reading is older than CLUSTER_CAPABILITIES_MAX_AGE."""
    return refresh_all()


@app.task(bind=True, max_retries=8)
def deliver_notification_task(self, *, delivery_id: int) -> str:
    """Send one notification to one channel; failures retry with exponential backoff and jitter
    (30 s, 1 min, 2 min, … capped at an hour), the last failure is recorded as the outcome.
    Not acks_late: a worker lost mid-send must not send the same message twice."""
    from endpoints.services.notifications import DeliveryError, delivery_attempt

    final = self.request.retries >= self.max_retries
    try:
        return delivery_attempt(delivery_id=delivery_id, final=final)
    except DeliveryError as exc:
        if final:
            return "failed"
        countdown = min(30 * 2 ** self.request.retries, 3600)
        raise self.retry(exc=exc, countdown=countdown + random.uniform(0, countdown / 4)) from None


@app.task
def requeue_lost_notifications_task() -> int:
    """Deliveries whose task was never published (broker down at the time) are sent now."""
    from endpoints.services.notifications import deliveries_requeue_lost

    return deliveries_requeue_lost()


@idempotent_task
def apply_rollout_decision_task(*, decision_id: int) -> str:
    """Apply one decision of an automated rollout (a no-op once applied: safe to deliver twice)."""
    from endpoints.services.rollouts import rollout_apply

    decision = rollout_apply(decision_id=decision_id)
    return decision.kind if decision is not None else "gone"
