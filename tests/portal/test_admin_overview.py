"""The platform administration overview."""

import pytest
from django.urls import reverse

from endpoints.models import Cluster, ReconcileAlert

pytestmark = pytest.mark.django_db


def test_admin_sees_counts_links_and_open_reconciler_alerts(client, admin_user, django_assert_max_num_queries):
    cluster = Cluster.objects.create(name="prod", api_url="http://127.0.0.1:9", connection="url")
    ReconcileAlert.objects.create(cluster=cluster, kind="deletion_cap", message="12 orphans found")
    ReconcileAlert.objects.create(cluster=cluster, kind="deletion_cap", message="old one",
                                  resolved_at="2026-01-01T00:00:00Z")
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("portal:admin-overview"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "12 orphans found" in body
    assert "old one" not in body
    for name in ("cluster-list", "project-list", "hardware-list", "runtime-list"):
        assert reverse(f"endpoints:{name}") in body


def test_admin_overview_is_forbidden_to_other_users_and_hidden_from_their_navigation(client, alice):
    client.force_login(alice)
    assert client.get(reverse("portal:admin-overview")).status_code == 403
    assert reverse("portal:admin-overview") not in client.get(reverse("home")).content.decode()


def test_anonymous_visitor_is_sent_to_login(client, db):
    response = client.get(reverse("portal:admin-overview"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
