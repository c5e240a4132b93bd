"""Alert and notification pages and API from the attacker's side: a Viewer cannot acknowledge
or subscribe, an outsider gets 404 on a project's notifications, an Owner cannot reach another
project's subscription; what admins do is audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from endpoints.models import NotificationSubscription, ReconcileAlert
from endpoints.services.notifications import channel_create
from tests.endpoints.endpoint_factories import ClusterFactory, ProjectFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(admin_user):
    from console.access.grants import grant_create

    cluster = ClusterFactory(name="c1")
    fraud = ProjectFactory(name="fraud", namespace="fraud", cluster=cluster)
    other = ProjectFactory(name="other", namespace="other", cluster=cluster)
    owner, viewer = UserFactory(username="olga"), UserFactory(username="victor")
    grant_create(actor=admin_user, role="owner", target=fraud, user=owner, reason="t")
    grant_create(actor=admin_user, role="viewer", target=fraud, user=viewer, reason="t")
    channel, _ = channel_create(actor=admin_user, name="team-hook", kind="webhook",
                                target="https://hooks.example.com/console?token=SECRET-IN-URL")
    alert = ReconcileAlert.objects.create(cluster=cluster, kind="deletion_cap", message="12 orphans")
    return type("W", (), {"fraud": fraud, "other": other, "owner": owner, "viewer": viewer, "channel": channel,
                          "alert": alert})


def test_viewer_cannot_acknowledge_an_alert_by_page_or_api(world):
    client = _as(world.viewer)
    assert client.post(reverse("endpoints:alert-acknowledge", kwargs={"pk": world.alert.pk})).status_code == 403
    assert client.post(reverse("api-alert-acknowledge", kwargs={"pk": world.alert.pk})).status_code == 403
    world.alert.refresh_from_db()
    assert world.alert.state == "open"
    assert not AuditEvent.objects.filter(action="reconcile.alert_acknowledged").exists()


def test_admin_acknowledges_on_the_page_and_it_is_audited(world, admin_user):
    client = _as(admin_user)
    page = client.get(reverse("endpoints:alert-list"))
    assert b"12 orphans" in page.content and b"Acknowledge" in page.content
    assert client.post(reverse("endpoints:alert-acknowledge", kwargs={"pk": world.alert.pk})).status_code == 302
    world.alert.refresh_from_db()
    assert (world.alert.state, world.alert.acknowledged_by) == ("acknowledged", admin_user)
    event = AuditEvent.objects.get(action="reconcile.alert_acknowledged")
    assert event.actor_name == "admin"
    answer = client.post(reverse("api-alert-acknowledge", kwargs={"pk": world.alert.pk}))
    assert answer.json()["changed"] is False  # already acknowledged: nothing recorded twice
    assert AuditEvent.objects.filter(action="reconcile.alert_acknowledged").count() == 1
    listed = client.get(reverse("api-alert-list")).json()["results"][0]
    assert listed["state"] == "acknowledged" and listed["acknowledged_by"] == "admin"
    assert listed["first_seen_at"] and listed["last_seen_at"]


def test_outsider_gets_404_on_a_projects_notifications(world):
    outsider = _as(UserFactory(username="mallory"))
    url = reverse("endpoints:project-notifications", kwargs={"name": "fraud"})
    assert outsider.get(url).status_code == 404
    assert outsider.post(url, {"channel": world.channel.pk}).status_code == 404
    assert not NotificationSubscription.objects.exists()


def test_viewer_sees_the_channels_but_cannot_subscribe(world):
    url = reverse("endpoints:project-notifications", kwargs={"name": "fraud"})
    client = _as(world.viewer)
    assert client.get(url).status_code == 200
    assert client.post(url, {"channel": world.channel.pk}).status_code == 403
    assert not NotificationSubscription.objects.exists()


def test_owner_subscribes_audited_and_never_sees_the_webhook_url(world):
    url = reverse("endpoints:project-notifications", kwargs={"name": "fraud"})
    client = _as(world.owner)
    page = client.get(url)
    assert b"team-hook" in page.content and b"SECRET-IN-URL" not in page.content
    assert client.post(url, {"channel": world.channel.pk}).status_code == 302
    subscription = NotificationSubscription.objects.get(project=world.fraud)
    event = AuditEvent.objects.get(action="notification_subscription.create")
    assert event.actor_name == "olga" and event.project_name == "fraud"
    # The channel's creation was audited without the URL's query (a token may live there).
    created = AuditEvent.objects.get(action="notification_channel.create")
    assert "SECRET-IN-URL" not in str(created.details)
    assert subscription.channel == world.channel


def test_owner_cannot_reach_another_projects_subscription(world, admin_user):
    elsewhere = NotificationSubscription.objects.create(project=world.other, channel=world.channel)
    client = _as(world.owner)
    # Through their own project's URL: not found there.
    assert client.post(reverse("endpoints:project-unsubscribe",
                               kwargs={"name": "fraud", "subscription": elsewhere.pk})).status_code == 404
    # Through the other project's URL: not visible at all.
    assert client.post(reverse("endpoints:project-unsubscribe",
                               kwargs={"name": "other", "subscription": elsewhere.pk})).status_code == 404
    assert NotificationSubscription.objects.filter(pk=elsewhere.pk).exists()


def test_admin_creates_a_webhook_channel_and_sees_its_secret_once(admin_user):
    client = _as(admin_user)
    answer = client.post(reverse("endpoints:channel-create"), {
        "name": "ops", "kind": "webhook", "target": "https://ops.example.com/hook", "all_projects": "on"})
    assert answer.status_code == 200 and b"whsec_" in answer.content
    listing = client.get(reverse("endpoints:channel-list"))
    assert b"ops.example.com" in listing.content and b"whsec_" not in listing.content
    assert AuditEvent.objects.filter(action="notification_channel.create").exists()


def test_owner_unsubscribes_a_subscription_whatever_its_id(world):
    """The subscription is found by its own id, never mistaken for the project's (the two ids
    differ on any real database)."""
    from endpoints.models import NotificationChannel

    project = world.fraud
    for index in range(project.pk + 2):  # other projects' subscriptions first: the ids cannot coincide
        filler = NotificationChannel.objects.create(name=f"filler-{index}", kind="email", target="x@example.com")
        NotificationSubscription.objects.create(project=world.other, channel=filler)
    channel = NotificationChannel.objects.create(name="team-mail", kind="email", target="team@example.com")
    subscription = NotificationSubscription.objects.create(project=project, channel=channel)
    assert subscription.pk != project.pk
    response = _as(world.owner).post(reverse("endpoints:project-unsubscribe",
                                             kwargs={"name": "fraud", "subscription": subscription.pk}))
    assert response.status_code == 302
    assert not NotificationSubscription.objects.filter(pk=subscription.pk).exists()
