"""Alert lifecycle and notifications end to end: an alert raised by a reconcile pass is sent
once by e-mail (to a real SMTP server on loopback) and once by signed webhook (to a loopback
receiver checking the signature), stays one notification over later passes, is cleared by the
pass that finds its cause gone and notified once more; acknowledging is audited."""

from __future__ import annotations

import pytest
from django.test import override_settings

from audit.models import AuditEvent
from endpoints.models import (
    Notification,
    NotificationChannel,
    NotificationDelivery,
    ReconcileAlert,
)
from endpoints.services.alerts import alert_acknowledge
from endpoints.services.notifications import channel_create, notify, subscription_create
from endpoints.services.reconciler import reconcile_cluster
from tests.endpoints.endpoint_factories import ProjectFactory, deploy_setup
from tests.endpoints.test_reconciler import _orphan

pytestmark = pytest.mark.django_db


@pytest.fixture
def mail_to(smtp_server):
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                           EMAIL_HOST=smtp_server.host, EMAIL_PORT=smtp_server.port, EMAIL_USE_TLS=False,
                           NOTIFICATION_FROM_EMAIL="console@example.com"):
        yield smtp_server


@pytest.fixture
def channels(admin_user, mail_to, webhook_receiver):
    email, _ = channel_create(actor=admin_user, name="platform-mail", kind="email",
                              target="oncall@example.com, platform@example.com", all_projects=True)
    hook, secret = channel_create(actor=admin_user, name="platform-hook", kind="webhook",
                                  target=webhook_receiver.url, all_projects=True)
    webhook_receiver.secret = secret
    return email, hook


def _pass(setup, capture, cap=10):
    with capture(execute=True):
        return reconcile_cluster(cluster=setup.cluster, max_deletions=cap)


def test_alert_is_notified_once_by_email_and_signed_webhook_then_cleared_and_notified_again(
        sandbox, alice, admin_user, channels, mail_to, webhook_receiver, django_capture_on_commit_callbacks):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    for i in range(12):
        _orphan(sandbox, f"orphan-{i}")

    _pass(setup, django_capture_on_commit_callbacks)
    alert = ReconcileAlert.objects.get(cluster=setup.cluster)
    assert alert.state == "open" and alert.first_seen_at is not None
    # Later passes over the cap refresh the alert, they do not notify again.
    _pass(setup, django_capture_on_commit_callbacks)
    _pass(setup, django_capture_on_commit_callbacks)
    alert.refresh_from_db()
    assert alert.last_seen_at > alert.first_seen_at
    assert len(mail_to.messages) == 1
    message = mail_to.messages[0]
    assert message["to"] == ["oncall@example.com", "platform@example.com"]
    assert message["from"] == "console@example.com"
    assert "Reconciler alert raised: Deletion cap reached" in message["subject"]
    assert "12 objects" in message["body"]
    assert len(webhook_receiver.received) == 1
    hook = webhook_receiver.received[0]
    assert hook["verified"], "the receiver checked the HMAC-SHA256 signature over timestamp and body"
    assert hook["body"]["event"] == "reconcile_alert" and hook["body"]["state"] == "open"
    assert hook["body"]["details"]["alert_id"] == alert.pk
    assert hook["headers"]["X-Console-Event"] == "reconcile_alert"

    # An admin acknowledges it: audited, not notified.
    assert alert_acknowledge(actor=admin_user, alert=alert) is True
    assert alert_acknowledge(actor=admin_user, alert=alert) is False
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", admin_user)
    acknowledged = AuditEvent.objects.get(action="reconcile.alert_acknowledged")
    assert acknowledged.actor_name == "admin" and acknowledged.details["alert_id"] == alert.pk

    # The cause goes away: three of the orphans are removed by hand, nine are within the cap.
    for i in range(3):
        sandbox.store.delete("inferenceservices", "fraud", f"orphan-{i}")
    sandbox.wait_for(lambda: all(sandbox.isvc("fraud", f"orphan-{i}") is None for i in range(3)),
                     message="removed by hand")
    report = _pass(setup, django_capture_on_commit_callbacks)
    assert report["deleted"] == 9, report
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at is not None and alert.resolved_by is None
    cleared = AuditEvent.objects.get(action="reconcile.alert_cleared")
    assert cleared.actor_name == "reconciler" and cleared.details["alert_id"] == alert.pk
    _pass(setup, django_capture_on_commit_callbacks)  # nothing left: no further notification

    assert len(mail_to.messages) == 2
    assert "Reconciler alert resolved" in mail_to.messages[1]["subject"]
    assert len(webhook_receiver.received) == 2
    assert webhook_receiver.received[1]["verified"]
    assert webhook_receiver.received[1]["body"]["state"] == "resolved"
    # The delivery log: four deliveries, all sent on the first attempt.
    log = NotificationDelivery.objects.order_by("pk")
    assert sorted((d.notification.state, d.channel.name, d.status, d.attempts) for d in log) == [
        ("open", "platform-hook", "sent", 1), ("open", "platform-mail", "sent", 1),
        ("resolved", "platform-hook", "sent", 1), ("resolved", "platform-mail", "sent", 1)]
    assert {d.response_status for d in log if d.channel.kind == "webhook"} == {204}


def test_a_webhook_that_keeps_failing_is_retried_and_the_failure_recorded(admin_user, webhook_receiver,
                                                                          django_capture_on_commit_callbacks):
    from console.celery import app
    from endpoints.tasks import deliver_notification_task

    hook, secret = channel_create(actor=admin_user, name="flaky", kind="webhook", target=webhook_receiver.url,
                                  all_projects=True)
    webhook_receiver.secret = secret
    webhook_receiver.script = [500, 502]
    # Eager tasks then run their retries at once (the countdown is skipped), as a worker would later.
    app.conf.task_eager_propagates = False
    with django_capture_on_commit_callbacks(execute=True):
        notify(key="test:1", event="reconcile_alert", state="open", subject="s", body="b")
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 3, "")
    assert len(webhook_receiver.received) == 3

    attempts = deliver_notification_task.max_retries + 1
    webhook_receiver.script = [500] * attempts
    with django_capture_on_commit_callbacks(execute=True):
        notify(key="test:2", event="reconcile_alert", state="open", subject="s", body="b")
    failed = NotificationDelivery.objects.get(notification__key="test:2")
    assert (failed.status, failed.attempts) == ("failed", attempts)
    assert failed.last_error == "HTTP 500 from the receiver"
    assert len(webhook_receiver.received) == 3 + attempts


def test_a_change_is_notified_once_however_often_it_is_evaluated(admin_user, mail_to,
                                                                 django_capture_on_commit_callbacks):
    channel_create(actor=admin_user, name="mail", kind="email", target="a@example.com", all_projects=True)
    with django_capture_on_commit_callbacks(execute=True):
        first = notify(key="endpoint_failed:1:3", event="endpoint_failed", subject="x", body="y")
        again = notify(key="endpoint_failed:1:3", event="endpoint_failed", subject="x", body="y")
    assert first is not None and again is None
    assert Notification.objects.count() == 1 and len(mail_to.messages) == 1


def test_project_notifications_reach_the_projects_subscribed_channels_only(admin_user, mail_to,
                                                                           django_capture_on_commit_callbacks):
    fraud, other = ProjectFactory(name="fraud"), ProjectFactory(name="other")
    team, _ = channel_create(actor=admin_user, name="fraud-team", kind="email", target="fraud@example.com")
    channel_create(actor=admin_user, name="unused", kind="email", target="nobody@example.com")
    subscription_create(actor=admin_user, project=fraud, channel=team)
    with django_capture_on_commit_callbacks(execute=True):
        notify(key="a", event="endpoint_failed", project=fraud, subject="fraud failed", body="b")
        notify(key="b", event="endpoint_failed", project=other, subject="other failed", body="b")
        notify(key="c", event="reconcile_alert", subject="platform", body="b")
    assert [(m["to"], m["subject"]) for m in mail_to.messages] == [(["fraud@example.com"], "fraud failed")]


def test_channel_targets_are_checked(admin_user):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not an e-mail address"):
        channel_create(actor=admin_user, name="m", kind="email", target="oncall")
    with pytest.raises(ValidationError, match="http"):
        channel_create(actor=admin_user, name="w", kind="webhook", target="file:///etc/passwd")
    assert not NotificationChannel.objects.exists()
