"""Renaming and deleting a team: a deleted team's grants are revoked first (each revocation
audited), so its members lose the team's access at once and the trail says so."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from console.access import grants, services
from console.permissions import can
from tests.console.access_factories import project_with_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(alice):
    project, _model = project_with_model("fraud")
    team = services.team_create(actor=None, name="fraud-analysts", members=[alice])
    grants.grant_create(actor=None, role="deployer", target=project, group=team, reason="analysts deploy")
    return team


def test_deleting_a_team_revokes_its_grants_audited_and_members_lose_access(client, admin_user, alice, team):
    from endpoints.models import Project

    project = Project.objects.get(name="fraud")
    assert can(alice, project, "deploy")
    client.force_login(admin_user)
    confirm = client.get(reverse("access:team-delete", kwargs={"pk": team.pk}))
    assert "1 live grant to the team end now" in confirm.content.decode()
    response = client.post(reverse("access:team-delete", kwargs={"pk": team.pk}))
    assert response.status_code == 302
    assert not Group.objects.filter(pk=team.pk).exists()
    assert not can(alice, project, "view")
    revoked = AuditEvent.objects.get(action="grant.revoke")
    assert revoked.actor_name == "admin"
    assert revoked.details["revoke_reason"] == "team fraud-analysts deleted"
    deleted = AuditEvent.objects.get(action="team.delete")
    assert deleted.details["members"] == ["alice"]
    assert deleted.details["grants_revoked"] == 1


def test_api_renames_and_deletes_a_team(admin_user, team):
    client = APIClient()
    client.force_authenticate(admin_user)
    url = reverse("api-team-detail", kwargs={"pk": team.pk})
    answer = client.patch(url, {"name": "risk-analysts"}, format="json")
    assert answer.status_code == 200
    assert answer.json()["name"] == "risk-analysts"
    assert AuditEvent.objects.get(action="team.update").details == {"old": {"name": "fraud-analysts"},
                                                                     "new": {"name": "risk-analysts"}}
    assert client.patch(url, {"name": "Platform admin"}, format="json").status_code == 400
    assert client.delete(url).status_code == 204
    assert not Group.objects.filter(pk=team.pk).exists()


def test_non_admins_cannot_rename_or_delete_a_team(client, alice, team):
    client.force_login(alice)
    assert client.post(reverse("access:team-delete", kwargs={"pk": team.pk})).status_code == 403
    assert client.post(reverse("access:team-edit", kwargs={"pk": team.pk}), {"name": "mine"}).status_code == 403
    api = APIClient()
    api.force_authenticate(alice)
    assert api.delete(reverse("api-team-detail", kwargs={"pk": team.pk})).status_code == 403
    assert Group.objects.get(pk=team.pk).name == "fraud-analysts"
