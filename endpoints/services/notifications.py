"""Notifications: channels (e-mail, signed webhook) configured by platform admins, projects'
subscriptions made by their Owners, and the delivery of each notification to every channel
that should hear of it (``docs/signals.md``).

``notify`` is called where a state changes — an alert opens or resolves, an endpoint's
generation fails, a drift verdict turns to alert or back, a grant nears its expiry — with a
key naming that change. The key is unique, so the same change met on every evaluation is
notified once. Deliveries are sent by ``deliver_notification_task`` after commit, retried
with backoff, and every attempt's outcome is kept in the delivery log.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from console import crypto
from endpoints import signing
from endpoints.models import (
    Notification,
    NotificationChannel,
    NotificationDelivery,
    NotificationSubscription,
    Project,
)

WEBHOOK_TIMEOUT_SECONDS = 10


class DeliveryError(Exception):
    """A delivery attempt failed (the task retries it with backoff)."""


# --- channels and subscriptions (audited writes) ---------------------------------------------


def _clean_target(kind: str, target: str) -> str:
    target = target.strip()
    if kind == NotificationChannel.Kind.EMAIL:
        addresses = [a.strip() for a in target.split(",") if a.strip()]
        if not addresses:
            raise ValidationError({"target": "Give at least one e-mail address."})
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError({"target": f"{address!r} is not an e-mail address."}) from None
        return ", ".join(addresses)
    try:
        URLValidator(schemes=["http", "https"])(target)
    except ValidationError:
        raise ValidationError({"target": "Give an http:// or https:// URL."}) from None
    return target


@transaction.atomic
def channel_create(*, actor, name: str, kind: str, target: str, all_projects: bool = False) -> tuple[
        NotificationChannel, str]:
    """Create a channel (platform admins). A webhook gets a fresh signing secret, returned once
    (the caller shows it on that response only); it is stored encrypted."""
    if kind not in NotificationChannel.Kind.values:
        raise ValidationError({"kind": "Choose e-mail or webhook."})
    if NotificationChannel.objects.filter(name=name).exists():
        raise ValidationError({"name": "A channel with this name exists."})
    target = _clean_target(kind, target)
    secret = ""
    channel = NotificationChannel(name=name, kind=kind, target=target, all_projects=all_projects)
    if kind == NotificationChannel.Kind.WEBHOOK:
        secret = "whsec_" + secrets.token_urlsafe(32)
        channel.secret_ciphertext = crypto.encrypt(secret)
    channel.full_clean(exclude=["secret_ciphertext"])
    channel.save()
    audit.record(action="notification_channel.create", actor=actor, target=channel,
                 details={"kind": kind, "target": _target_for_audit(channel), "all_projects": all_projects})
    return channel, secret


@transaction.atomic
def channel_delete(*, actor, channel: NotificationChannel) -> None:
    audit.record(action="notification_channel.delete", actor=actor, target=channel,
                 details={"kind": channel.kind, "target": _target_for_audit(channel)})
    channel.delete()


def _target_for_audit(channel: NotificationChannel) -> str:
    # A webhook URL may carry a token in its query (Slack-style URLs): the trail keeps the origin.
    if channel.kind == NotificationChannel.Kind.WEBHOOK:
        return channel.target.split("?", 1)[0]
    return channel.target


@transaction.atomic
def subscription_create(*, actor, project: Project, channel: NotificationChannel) -> NotificationSubscription:
    """A project's Owner sends the project's notifications to ``channel`` (idempotent)."""
    if not channel.enabled:
        raise ValidationError({"channel": "This channel is disabled."})
    subscription, created = NotificationSubscription.objects.get_or_create(
        project=project, channel=channel, defaults={"created_by": actor})
    if created:
        audit.record(action="notification_subscription.create", actor=actor, target=project, project=project,
                     details={"channel": channel.name})
    return subscription


@transaction.atomic
def subscription_delete(*, actor, subscription: NotificationSubscription) -> None:
    audit.record(action="notification_subscription.delete", actor=actor, target=subscription.project,
                 project=subscription.project, details={"channel": subscription.channel.name})
    subscription.delete()


# --- notify and deliver ----------------------------------------------------------------------


def channels_for(project: Project | None):
    """Enabled channels for every project, plus those the project subscribed."""
    condition = Q(all_projects=True)
    if project is not None:
        condition |= Q(subscriptions__project=project)
    return NotificationChannel.objects.filter(condition, enabled=True).distinct()


def notify(*, key: str, event: str, state: str = "", project: Project | None = None, subject: str,
           body: str, payload: dict | None = None) -> Notification | None:
    """Record the change named by ``key`` and queue its deliveries (after commit). A key seen
    before returns None and sends nothing: one notification per state change."""
    from endpoints.tasks import deliver_notification_task

    if Notification.objects.filter(key=key).exists():
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                key=key, event=event, state=state, project=project, subject=subject[:300], body=body,
                payload=payload or {})
            deliveries = [NotificationDelivery.objects.create(notification=notification, channel=channel)
                          for channel in channels_for(project)]
    except IntegrityError:  # another process recorded the same change a moment ago
        return None
    for delivery in deliveries:
        deliver_notification_task.delay_on_commit(delivery_id=delivery.pk)
    return notification


# A delivery never attempted this long after it was recorded lost its task (the broker was down
# when it was published): the sweep queues it again. Far beyond a queue's normal delay, so a
# slow queue does not get a second copy.
LOST_DELIVERY_AFTER = timedelta(minutes=10)


def deliveries_requeue_lost(*, now=None, limit: int = 500) -> int:
    """Queue again the deliveries whose task never ran (``attempts`` 0, older than
    ``LOST_DELIVERY_AFTER``); how many. Run by beat (``notifications-requeue-lost``)."""
    from endpoints.tasks import deliver_notification_task

    now = now or timezone.now()
    ids = list(NotificationDelivery.objects.filter(
        status=NotificationDelivery.Status.PENDING, attempts=0, created_at__lt=now - LOST_DELIVERY_AFTER)
        .order_by("pk").values_list("pk", flat=True)[:limit])
    for delivery_id in ids:
        deliver_notification_task.delay(delivery_id=delivery_id)
    return len(ids)


def webhook_body(notification: Notification) -> bytes:
    document = {
        "id": notification.pk,
        "event": notification.event,
        "state": notification.state,
        "subject": notification.subject,
        "text": notification.body,
        "project": notification.project.name if notification.project_id else None,
        "created_at": notification.created_at.isoformat(),
        "console": settings.CONSOLE_BASE_URL,
        "details": notification.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _send_email(channel: NotificationChannel, notification: Notification) -> None:
    recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
    send_mail(notification.subject, notification.body, settings.NOTIFICATION_FROM_EMAIL, recipients,
              fail_silently=False)


def _send_webhook(channel: NotificationChannel, notification: Notification, delivery: NotificationDelivery) -> int:
    if not channel.target.lower().startswith(("http://", "https://")):  # checked at creation, again here
        raise DeliveryError("the channel's URL is not http(s)")
    body = webhook_body(notification)
    secret = crypto.decrypt(channel.secret_ciphertext)
    request = urllib.request.Request(channel.target, data=body, method="POST", headers={  # noqa: S310 - http(s) only
        "Content-Type": "application/json",
        "User-Agent": "inference-console-notifications",
        signing.HEADER: signing.signature_header(secret, body),
        "X-Console-Event": notification.event,
        "X-Console-Delivery": str(delivery.pk),
    })
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
            return response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from the receiver") from None


def delivery_attempt(*, delivery_id: int, final: bool = False) -> str:
    """Send one delivery; records the attempt. Raises ``DeliveryError`` when it failed and may
    be retried; on the ``final`` attempt the failure is recorded as the delivery's outcome."""
    delivery = (NotificationDelivery.objects.select_related("notification__project", "channel")
                .filter(pk=delivery_id).first())
    if delivery is None or delivery.status == NotificationDelivery.Status.SENT:
        return "skipped"
    channel, notification = delivery.channel, delivery.notification
    now = timezone.now()
    try:
        status_code = None
        if channel.kind == NotificationChannel.Kind.EMAIL:
            _send_email(channel, notification)
        else:
            status_code = _send_webhook(channel, notification, delivery)
    except Exception as exc:
        error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        NotificationDelivery.objects.filter(pk=delivery.pk).update(
            attempts=delivery.attempts + 1, last_attempt_at=now, last_error=error[:2000],
            status=NotificationDelivery.Status.FAILED if final else NotificationDelivery.Status.PENDING)
        raise DeliveryError(error) from exc
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        attempts=delivery.attempts + 1, last_attempt_at=now, delivered_at=now, last_error="",
        response_status=status_code, status=NotificationDelivery.Status.SENT)
    return "sent"


# --- what is notified besides reconciler alerts ------------------------------------------------


def endpoint_failure_changed(endpoint, *, failed: bool, generation: int, reason: str) -> None:
    """An endpoint turned Failed (its latest generation refused, or KServe reports it cannot
    serve), or recovered from it: notified once per generation and direction."""
    state = "failed" if failed else "recovered"
    notify(key=f"endpoint_failed:{endpoint.pk}:g{generation}:{state}", event=Notification.Event.ENDPOINT_FAILED,
           state=state, project=endpoint.project,
           subject=f"[inference-console] Endpoint {endpoint.project.name}/{endpoint.name} "
                   f"{'failed' if failed else 'recovered'} (generation {generation})",
           body=reason,
           payload={"endpoint_id": endpoint.pk, "project": endpoint.project.name, "endpoint": endpoint.name,
                    "generation": generation, "state": state})


def drift_alert_changed(window, *, alerting: bool) -> None:
    """The newest drift window of an endpoint's model version entered or left the alert state."""
    endpoint, version = window.endpoint, window.model_version
    state = "open" if alerting else "resolved"
    notify(key=f"drift_alert:{endpoint.pk}:{version.pk}:{window.start.isoformat()}:{state}",
           event=Notification.Event.DRIFT_ALERT, state=state, project=endpoint.project,
           subject=f"[inference-console] Drift {'alert' if alerting else 'back to normal'}: "
                   f"{endpoint.project.name}/{endpoint.name} ({version})",
           body=(f"Window {window.start:%Y-%m-%d %H:%M} – {window.end:%H:%M} UTC: status {window.status}, "
                 f"largest PSI {window.max_psi:.3f} on {window.top_feature or 'the prediction'} "
                 f"(alert threshold {window.psi_alert})."),
           payload={"endpoint_id": endpoint.pk, "project": endpoint.project.name, "endpoint": endpoint.name,
                    "model_version": str(version), "window_start": window.start.isoformat(),
                    "window_end": window.end.isoformat(), "status": window.status, "max_psi": window.max_psi,
                    "top_feature": window.top_feature, "state": state})
