"""Reconciler alerts: something the reconciler refused to do on its own (e.g. a pass that would
delete more managed objects than the safety cap) and a platform admin must look at."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from endpoints.models import Cluster, ReconcileAlert


def alert_raise(*, cluster: Cluster, kind: str, message: str, details: dict) -> ReconcileAlert:
    """Raise an alert (audited), or refresh the open alert of the same kind on the cluster: a
    problem met on every pass stays one alert, showing its latest numbers."""
    alert = ReconcileAlert.objects.filter(cluster=cluster, kind=kind, resolved_at__isnull=True).first()
    if alert is None:
        alert = ReconcileAlert.objects.create(cluster=cluster, kind=kind, message=message, details=details)
        audit.record(action="reconcile.alert", actor=None, actor_name="reconciler", target=cluster,
                     outcome=audit.DENIED, details={"kind": kind, "message": message, **details})
    else:
        alert.message, alert.details = message, details
        alert.save(update_fields=["message", "details", "last_seen_at"])
    return alert


@transaction.atomic
def alert_resolve(*, actor, alert: ReconcileAlert) -> bool:
    """A person looked at a reconciler alert and dealt with it: it leaves the admin pages, and
    the next pass that meets the same problem raises a new one. Resolving an alert someone
    already resolved changes nothing and records nothing (two admins clicking at once, or a
    stale page); returns whether this call resolved it."""
    now = timezone.now()
    # A conditional UPDATE, not save(): the reconciler may be refreshing the same row's message.
    if not ReconcileAlert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(resolved_at=now):
        return False
    alert.resolved_at = now
    audit.record(action="reconcile.alert_resolved", actor=actor, target=alert.cluster,
                 details={"kind": alert.kind, "alert_id": alert.pk, "message": alert.message})
    return True
