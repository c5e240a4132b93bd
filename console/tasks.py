"""The framework's own periodic task."""

from __future__ import annotations

from console.celery import app


@app.task(bind=True, ignore_result=True)
def worker_heartbeat_task(self) -> None:
    """Sent by beat every 15 s through the shared queue, and by each worker every 10 s to a
    queue only it consumes (console/celery.py): a pool process running it records the worker's
    heartbeat (console/heartbeats.py). Its completion also touches the worker's liveness file
    and the heartbeat metric (the ``task_postrun`` handler), so an idle worker still looks alive
    and a wedged one does not."""
    from console.heartbeats import record
    from console.models import Heartbeat

    record(component=Heartbeat.Component.WORKER, name=self.request.hostname or "unknown")


@app.task
def prune_idempotency_keys_task() -> int:
    """Hourly (beat): forget the Idempotency-Key answers older than IDEMPOTENCY_KEY_TTL_SECONDS."""
    from console.api.idempotency import idempotency_keys_prune

    return idempotency_keys_prune()
