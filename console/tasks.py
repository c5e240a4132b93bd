"""The framework's own periodic task."""

from __future__ import annotations

from console.celery import app


@app.task
def worker_heartbeat_task() -> None:
    """Run by beat every 15 s: its completion updates the workers' heartbeat metric (the
    ``task_postrun`` handler in console/celery.py), so an idle worker still looks alive."""


@app.task
def prune_idempotency_keys_task() -> int:
    """Hourly (beat): forget the Idempotency-Key answers older than IDEMPOTENCY_KEY_TTL_SECONDS."""
    from console.api.idempotency import idempotency_keys_prune

    return idempotency_keys_prune()
