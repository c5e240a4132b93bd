"""Thin Celery tasks: load by primary key, call a service, return."""

from __future__ import annotations

from console.celery import idempotent_task
from endpoints import services
from endpoints.cluster import TransientClusterError

# Transient cluster errors (connection failures, timeouts, 429, 5xx) retry with exponential
# backoff and jitter; permanent ones are recorded by the service as a Failed endpoint.
_RETRY = {
    "autoretry_for": (TransientClusterError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 10,
}


@idempotent_task(**_RETRY)
def reconcile_endpoint_task(*, endpoint_id: int) -> str:
    return services.endpoint_apply(endpoint_id=endpoint_id)


@idempotent_task(**_RETRY)
def delete_endpoint_task(*, endpoint_id: int) -> str:
    return services.endpoint_remove(endpoint_id=endpoint_id)
