"""Reconciler alerts: something the reconciler refused to do on its own (a pass that would
delete more managed objects than the safety cap) or could not do (a cluster none of whose
namespaces could be listed), and a platform admin must look at.

Lifecycle: ``alert_raise`` opens an alert (or refreshes the open one of the same kind and
cluster: a problem met on every pass stays one alert), ``alert_acknowledge`` records that an
admin is on it, ``alert_clear`` resolves it when a later pass finds the cause gone and
``alert_resolve`` when an admin resolves it by hand. Every state change is audited in the same
transaction; opening and resolving are notified (once each: the notification key names the
alert and its new state)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from endpoints.models import Cluster, Notification, ReconcileAlert
from endpoints.services.notifications import notify

UNRESOLVED = [ReconcileAlert.State.OPEN, ReconcileAlert.State.ACKNOWLEDGED]
logger = logging.getLogger(__name__)
T = TypeVar("T")


def _notify(alert: ReconcileAlert, state: str, text: str) -> None:
    verb = {"open": "raised", "resolved": "resolved"}[state]
    notify(key=f"reconcile_alert:{alert.pk}:{state}", event=Notification.Event.RECONCILE_ALERT, state=state,
           subject=f"[inference-console] Reconciler alert {verb}: {alert.get_kind_display()} on {alert.cluster.name}",
           body=text,
           payload={"alert_id": alert.pk, "kind": alert.kind, "cluster": alert.cluster.name, "state": state,
                    "first_seen_at": alert.first_seen_at.isoformat() if alert.first_seen_at else None,
                    "message": alert.message})


@transaction.atomic
def alert_raise(*, cluster: Cluster, kind: str, message: str, details: dict) -> ReconcileAlert:
    """Raise an alert (audited, notified), or refresh the unresolved alert of the same kind on
    the cluster (last seen, latest numbers; neither audited nor notified again)."""
    alert = (ReconcileAlert.objects.select_for_update()
             .filter(cluster=cluster, kind=kind, state__in=UNRESOLVED).first())
    if alert is None:
        alert = ReconcileAlert.objects.create(cluster=cluster, kind=kind, message=message, details=details)
        audit.record(action="reconcile.alert", actor=None, actor_name="reconciler", target=cluster,
                     outcome=audit.DENIED, details={"kind": kind, "alert_id": alert.pk, "message": message, **details})
        _notify(alert, "open", message)
    else:
        alert.message, alert.details = message, details
        alert.save(update_fields=["message", "details", "last_seen_at"])
    return alert


@transaction.atomic
def alert_clear(*, cluster: Cluster, kind: str, reason: str) -> ReconcileAlert | None:
    """The reconciler found the cause of the cluster's unresolved ``kind`` alert gone: resolve
    it (audited, notified). Nothing to clear returns None and records nothing."""
    alert = ReconcileAlert.objects.filter(cluster=cluster, kind=kind, state__in=UNRESOLVED).first()
    if alert is None:
        return None
    now = timezone.now()
    if not ReconcileAlert.objects.filter(pk=alert.pk, state__in=UNRESOLVED).update(
            state=ReconcileAlert.State.RESOLVED, resolved_at=now, resolved_by=None):
        return None
    alert.state, alert.resolved_at = ReconcileAlert.State.RESOLVED, now
    audit.record(action="reconcile.alert_cleared", actor=None, actor_name="reconciler", target=cluster,
                 details={"kind": kind, "alert_id": alert.pk, "reason": reason})
    _notify(alert, "resolved", f"{reason}\n\nThe alert was: {alert.message}")
    return alert


@transaction.atomic
def alert_acknowledge(*, actor, alert: ReconcileAlert) -> bool:
    """A platform admin says someone is dealing with an open alert. Acknowledging one already
    acknowledged or resolved changes nothing and records nothing; returns whether this call did."""
    now = timezone.now()
    if not ReconcileAlert.objects.filter(pk=alert.pk, state=ReconcileAlert.State.OPEN).update(
            state=ReconcileAlert.State.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor):
        return False
    alert.state, alert.acknowledged_at, alert.acknowledged_by = ReconcileAlert.State.ACKNOWLEDGED, now, actor
    audit.record(action="reconcile.alert_acknowledged", actor=actor, target=alert.cluster,
                 details={"kind": alert.kind, "alert_id": alert.pk, "message": alert.message})
    return True


@transaction.atomic
def alert_resolve(*, actor, alert: ReconcileAlert) -> bool:
    """A person looked at a reconciler alert and dealt with it: it leaves the admin pages, and
    the next pass that meets the same problem raises a new one. Resolving an alert someone
    already resolved changes nothing and records nothing (two admins clicking at once, or a
    stale page); returns whether this call resolved it."""
    now = timezone.now()
    # A conditional UPDATE, not save(): the reconciler may be refreshing the same row's message.
    if not ReconcileAlert.objects.filter(pk=alert.pk, state__in=UNRESOLVED).update(
            state=ReconcileAlert.State.RESOLVED, resolved_at=now, resolved_by=actor):
        return False
    alert.state, alert.resolved_at, alert.resolved_by = ReconcileAlert.State.RESOLVED, now, actor
    audit.record(action="reconcile.alert_resolved", actor=actor, target=alert.cluster,
                 details={"kind": alert.kind, "alert_id": alert.pk, "message": alert.message})
    _notify(alert, "resolved", f"Resolved by {actor.get_username()}.\n\nThe alert was: {alert.message}")
    return True


def isolated(cluster: Cluster, *, kind: str, what: str, work: Callable[[], T]) -> T | None:
    """Run one cluster's share of a periodic pass so that an error of this cluster stays this
    cluster's: the error is logged, counted and raised as the cluster's ``kind`` alert (shown on
    the cluster page and the alerts page, notified), and None is returned so the caller goes on
    with the next cluster. A later pass that succeeds clears the alert. ``what`` names the pass
    in the alert ("reconcile pass", "capability reading")."""
    from console import metrics

    try:
        result = work()
    except Exception as exc:  # noqa: BLE001 - any error of one cluster must not stop the others
        logger.exception("%s failed on cluster %s", what, cluster.name)
        metrics.PERIODIC_PASS_FAILURES.labels(cluster.name, kind).inc()
        error = f"{type(exc).__name__}: {exc}"[:1000]
        try:
            alert_raise(cluster=cluster, kind=kind,
                        message=f"The {what} failed on this cluster: {error}. The other clusters were not "
                                "affected; this one is retried at every pass.",
                        details={"error": error})
        except Exception:  # noqa: BLE001 - e.g. the database itself is gone; logged above, next pass retries
            logger.exception("could not record the %s failure of cluster %s", what, cluster.name)
        return None
    alert_clear(cluster=cluster, kind=kind, reason=f"The {what} succeeded on this cluster again.")
    return result
