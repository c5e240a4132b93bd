"""The Django admin changes no access: the group pages are gone, every other page is view-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from audit.models import AuditEvent
from console.access import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_adding_view_audit_event_to_a_group_through_the_admin_is_impossible(superuser_client, alice):
    team = services.team_create(actor=None, name="analysts", members=[alice])
    permission = Permission.objects.get(codename="view_auditevent")
    events = AuditEvent.objects.count()

    assert superuser_client.get(f"/django-admin/auth/group/{team.pk}/change/").status_code == 404
    response = superuser_client.post(f"/django-admin/auth/group/{team.pk}/change/",
                                     {"name": "analysts", "permissions": [permission.pk]})
    assert response.status_code == 404
    assert superuser_client.post("/django-admin/auth/group/add/",
                                 {"name": "readers", "permissions": [permission.pk]}).status_code == 404

    assert not team.permissions.filter(pk=permission.pk).exists()
    assert not Group.objects.filter(name="readers").exists()
    assert not alice.has_perm("audit.view_auditevent")
    assert AuditEvent.objects.count() == events


def test_the_admin_index_offers_no_group_or_user_page_and_no_add_link(superuser_client):
    page = superuser_client.get("/django-admin/").content.decode()
    assert "/django-admin/auth/group/" not in page and "/django-admin/console/user/" not in page
    assert "addlink" not in page


def test_sign_in_attempts_are_view_only(superuser_client, admin_user):
    from axes.models import AccessAttempt

    attempt = AccessAttempt.objects.create(username="mallory", ip_address="127.0.0.1", user_agent="x",
                                           failures_since_start=5, get_data="", post_data="")
    assert superuser_client.get("/django-admin/axes/accessattempt/").status_code == 200
    assert superuser_client.get(f"/django-admin/axes/accessattempt/{attempt.pk}/change/").status_code == 200
    assert superuser_client.post(f"/django-admin/axes/accessattempt/{attempt.pk}/delete/",
                                 {"post": "yes"}).status_code == 403
    response = superuser_client.post("/django-admin/axes/accessattempt/",
                                     {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"})
    assert response.status_code in (200, 302)
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()
