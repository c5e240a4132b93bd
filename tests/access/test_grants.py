"""Grants: roles become object permissions (with project inheritance), expiry is enforced at
query time, revocation and team changes take effect at once, and every change is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from console.access import grants, services
from console.access.models import Grant
from console.access.tasks import grants_expire_task
from console.permissions import can, visible
from endpoints.models import Endpoint, EndpointUserObjectPermission, ProjectGroupObjectPermission
from endpoints.models import ProjectUserObjectPermission as ProjectPerm
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def fraud():
    project, model = project_with_model("fraud")
    return project


@pytest.mark.parametrize(("role", "allowed"), [
    ("viewer", {"view"}),
    ("deployer", {"view", "deploy"}),
    ("owner", {"view", "deploy", "infer", "manage"}),
    ("caller", {"view", "infer"}),
])
def test_a_project_role_gives_its_bundle_on_every_endpoint_of_the_project(alice, fraud, role, allowed):
    endpoint = endpoint_in(fraud, "scorer")
    grants.grant_create(actor=None, role=role, target=fraud, user=alice, reason="test")
    for action in ("view", "deploy", "infer", "manage"):
        assert can(alice, endpoint, action) is (action in allowed), action
        assert can(alice, fraud, action) is (action in allowed), action


def test_an_endpoint_role_covers_only_that_endpoint(alice, fraud):
    scorer, other = endpoint_in(fraud, "scorer"), endpoint_in(fraud, "other")
    grants.grant_create(actor=None, role="caller", target=scorer, user=alice, reason="test")
    assert can(alice, scorer, "infer") and not can(alice, other, "view") and not can(alice, fraud, "view")


def test_deployer_on_a_project_may_register_models_there(alice, fraud):
    grants.grant_create(actor=None, role="deployer", target=fraud, user=alice, reason="test")
    assert can(alice, fraud, "deploy")
    model = fraud.models.first()
    assert can(alice, model, "deploy")


def test_models_are_not_offered_the_caller_role(alice, fraud):
    model = fraud.models.first()
    assert "caller" not in dict(grants.roles_for(type(model)))
    with pytest.raises(ValidationError):
        grants.grant_create(actor=None, role="caller", target=model, user=alice, reason="test")


def test_an_expired_grant_denies_from_the_moment_it_expires(alice, fraud):
    endpoint = endpoint_in(fraud, "scorer")
    expiry = timezone.now() + timedelta(hours=2)
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="on call", expires_at=expiry)
    with time_machine.travel(expiry - timedelta(microseconds=1), tick=False):
        assert can(alice, endpoint, "infer")
        assert list(visible(Endpoint.objects.all(), alice)) == [endpoint]
    with time_machine.travel(expiry, tick=False):
        assert not can(alice, endpoint, "infer")
        assert list(visible(Endpoint.objects.all(), alice)) == []


def test_overlapping_grants_keep_access_until_the_last_one_ends(alice, fraud):
    endpoint = endpoint_in(fraud, "scorer")
    soon, later = timezone.now() + timedelta(hours=1), timezone.now() + timedelta(days=1)
    short = grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="a", expires_at=soon)
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="b", expires_at=later)
    assert ProjectPerm.objects.get(user=alice, permission__codename="view_project").expires_at == later
    with time_machine.travel(soon + timedelta(minutes=1), tick=False):
        assert can(alice, endpoint, "view")
    grants.grant_revoke(actor=None, grant=short)
    assert can(alice, endpoint, "view")


def test_revoking_ends_access_at_once_and_is_audited(alice, admin_user, fraud):
    endpoint = endpoint_in(fraud, "scorer")
    grant = grants.grant_create(actor=admin_user, role="deployer", target=fraud, user=alice, reason="project X")
    assert can(alice, endpoint, "deploy")
    grants.grant_revoke(actor=admin_user, grant=grant, reason="project over")
    assert not can(alice, endpoint, "view")
    assert not ProjectPerm.objects.filter(user=alice).exists()
    created, revoked = (AuditEvent.objects.get(action=a) for a in ("grant.create", "grant.revoke"))
    assert created.details["reason"] == "project X" and created.project_id == fraud.pk
    assert created.details["permissions"] == ["view_project", "deploy_project"]
    assert revoked.details["revoke_reason"] == "project over" and revoked.actor_name == "admin"


def test_team_grants_follow_membership_both_ways(alice, admin_user, fraud):
    endpoint = endpoint_in(fraud, "scorer")
    team = services.team_create(actor=admin_user, name="risk")
    grants.grant_create(actor=admin_user, role="deployer", target=fraud, group=team, reason="team")
    assert not can(alice, endpoint, "deploy")
    services.team_add_member(actor=admin_user, team=team, user=alice)
    assert can(alice, endpoint, "deploy")
    services.team_remove_member(actor=admin_user, team=team, user=alice)
    assert not can(alice, endpoint, "view")
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="team.").order_by("id")] == [
        "team.create", "team.member_add", "team.member_remove"]


def test_only_managers_may_grant_and_revoke(alice, bob, fraud):
    with pytest.raises(PermissionDenied):
        grants.grant_create(actor=alice, role="viewer", target=fraud, user=bob, reason="x")
    grants.grant_create(actor=None, role="deployer", target=fraud, user=alice, reason="x")
    with pytest.raises(PermissionDenied):  # deploying is not managing access
        grants.grant_create(actor=alice, role="viewer", target=fraud, user=bob, reason="x")
    grants.grant_create(actor=None, role="owner", target=fraud, user=alice, reason="x")
    given = grants.grant_create(actor=alice, role="viewer", target=fraud, user=bob, reason="joins")
    with pytest.raises(PermissionDenied):
        grants.grant_revoke(actor=bob, grant=given)
    grants.grant_revoke(actor=alice, grant=given)


def test_a_grant_needs_a_reason_a_future_expiry_one_principal_and_no_live_twin(alice, fraud):
    team = Group.objects.create(name="risk")
    cases = [
        {"user": alice, "reason": ""},
        {"user": alice, "reason": "x", "expires_at": timezone.now() - timedelta(seconds=1)},
        {"user": alice, "group": team, "reason": "x"},
        {"reason": "x"},
    ]
    for kwargs in cases:
        with pytest.raises(ValidationError):
            grants.grant_create(actor=None, role="viewer", target=fraud, **kwargs)
    grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="x")
    with pytest.raises(ValidationError):
        grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="again")


def test_deactivated_users_cannot_receive_grants(alice, admin_user, fraud):
    services.user_deactivate(actor=admin_user, user=alice)
    with pytest.raises(ValidationError):
        grants.grant_create(actor=admin_user, role="viewer", target=fraud, user=alice, reason="x")


def test_the_cleanup_task_removes_expired_rows_and_audits_each_expiry_once(alice, fraud):
    endpoint = endpoint_in(fraud, "scorer")
    expiry = timezone.now() + timedelta(hours=1)
    team = Group.objects.create(name="risk")
    grants.grant_create(actor=None, role="caller", target=endpoint, user=alice, reason="x", expires_at=expiry)
    grants.grant_create(actor=None, role="viewer", target=fraud, group=team, reason="x", expires_at=expiry)
    grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="stays")
    assert grants_expire_task() == 0
    with time_machine.travel(expiry + timedelta(seconds=1), tick=False):
        assert grants_expire_task() == 2
        assert grants_expire_task() == 0  # idempotent
    assert not EndpointUserObjectPermission.objects.exists()
    assert not ProjectGroupObjectPermission.objects.exists()
    assert ProjectPerm.objects.filter(user=alice).count() == 1
    events = AuditEvent.objects.filter(action="grant.expire")
    assert events.count() == 2 and {e.actor_name for e in events} == {"system"}
    assert Grant.objects.filter(expiry_recorded_at__isnull=False).count() == 2


def test_expired_grants_are_listed_as_such_but_not_as_live(alice, fraud):
    expiry = timezone.now() + timedelta(hours=1)
    grant = grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="x", expires_at=expiry)
    with time_machine.travel(expiry, tick=False):
        assert grant.state() == "expired"
        assert list(grants.grants_on(fraud)) == []
        assert list(grants.grants_on(fraud, include_ended=True)) == [grant]
