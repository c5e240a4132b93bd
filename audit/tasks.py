"""Celery tasks of the audit trail: thin wrappers that load by primary key and call a service.
All are idempotent (state guards, unique constraints), so they are safe to run twice."""

from __future__ import annotations

from console.celery import idempotent_task


@idempotent_task
def process_ingest_batch_task(*, batch_id: int) -> None:
    from audit import ingest

    ingest.batch_process(batch_id=batch_id)


@idempotent_task
def retry_ingest_batches_task() -> int:
    from audit import ingest

    return ingest.batch_retry_due()


@idempotent_task
def sweep_inference_pairs_task() -> dict:
    from audit import ingest

    return ingest.pairs_sweep()


@idempotent_task
def seal_events_task() -> int:
    from audit import sealing

    return len(sealing.seal_pending())


@idempotent_task
def archive_and_prune_task() -> dict:
    from audit import retention

    return retention.archive_and_prune()


@idempotent_task
def drain_ingest_buffer_task() -> dict:
    from audit import buffer

    buffer.refusals_flush()
    return buffer.buffer_drain(max_seconds=30)


@idempotent_task
def verify_trail_task(*, run_id: int) -> None:
    from audit import verification

    verification.verification_run(run_id=run_id)
