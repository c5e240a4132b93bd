"""Verification from the integrity page: inline for small trails, in a worker for large ones
(``AUDIT_VERIFY_INLINE_EVENTS``), with progress the page shows while it runs."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from audit import services
from audit.models import AuditSeal, VerificationRun
from audit.verify import Report, verify


def sealed_events() -> int:
    return int(AuditSeal.objects.aggregate(total=Sum("event_count"))["total"] or 0)


def runs_in_background() -> bool:
    return sealed_events() > settings.AUDIT_VERIFY_INLINE_EVENTS


def verification_start(*, actor) -> VerificationRun:
    """Queue a verification (one at a time: a queued or running one is returned instead)."""
    from audit.tasks import verify_trail_task

    with transaction.atomic():
        current = (VerificationRun.objects.select_for_update()
                   .filter(status__in=[VerificationRun.Status.QUEUED, VerificationRun.Status.RUNNING]).first())
        if current is not None:
            return current
        run = VerificationRun.objects.create(
            actor_id=str(actor.pk) if actor is not None else "", actor_name=actor.get_username() if actor else "",
            seals_total=AuditSeal.objects.count())
        verify_trail_task.delay_on_commit(run_id=run.pk)
    return run


def verification_run(*, run_id: int) -> Report | None:
    """Run a queued verification, updating its progress every 100 seals; audited at the end."""
    run = VerificationRun.objects.filter(pk=run_id, status=VerificationRun.Status.QUEUED).first()
    if run is None:
        return None
    VerificationRun.objects.filter(pk=run.pk).update(status=VerificationRun.Status.RUNNING)

    def progress(done: int) -> None:
        VerificationRun.objects.filter(pk=run.pk).update(seals_done=done)

    try:
        report = verify(progress=progress)
    except Exception as exc:
        VerificationRun.objects.filter(pk=run.pk).update(
            status=VerificationRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000],
            finished_at=timezone.now())
        raise
    with transaction.atomic():
        services.record_verification(actor=None, actor_name=run.actor_name or "integrity page", report=report)
        VerificationRun.objects.filter(pk=run.pk).update(
            status=VerificationRun.Status.DONE, seals_done=report.seals, finished_at=timezone.now(),
            summary=report.summary())
    return report
