"""``user.has_perm(perm, obj)`` and the chokepoint give the same answer, both ways.

Guardian's own backend is not installed: it reads its tables directly and would still say yes
to an expired grant, and no to an endpoint reached through its project. These tests fail if
it comes back (or if the grant backend drifts from ``console.permissions.can``)."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from console.access import grants
from console.permissions import can
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = pytest.mark.django_db

ACTIONS = ("view", "deploy", "infer", "manage")


def _answers(user, obj):
    label, model_name = type(obj)._meta.app_label, type(obj)._meta.model_name
    return {a: (user.has_perm(f"{label}.{a}_{model_name}", obj), can(user, obj, a)) for a in ACTIONS}


def _agree(user, obj):
    answers = _answers(user, obj)
    assert all(has_perm == chokepoint for has_perm, chokepoint in answers.values()), answers
    return {a: pair[0] for a, pair in answers.items()}


def test_a_project_grant_reaches_its_endpoints_through_has_perm(alice):
    project, _ = project_with_model("inherit")
    endpoint = endpoint_in(project, "scorer")
    grants.grant_create(actor=None, role="deployer", target=project, user=alice, reason="team project")
    assert _agree(alice, endpoint) == {"view": True, "deploy": True, "infer": False, "manage": False}
    assert alice.has_perm("endpoints.deploy_endpoint", endpoint)


def test_an_expired_grant_is_refused_by_has_perm_the_second_it_expires(alice):
    project, _ = project_with_model("expiring")
    endpoint = endpoint_in(project, "scorer")
    grants.grant_create(actor=None, role="caller", target=endpoint, user=alice, reason="trial",
                        expires_at=timezone.now() + timedelta(hours=1))
    assert _agree(alice, endpoint)["infer"] is True
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        # The guardian row is still there (the cleanup task has not run): only expiry ends it.
        assert _agree(alice, endpoint) == dict.fromkeys(ACTIONS, False)


def test_an_outsider_and_an_anonymous_user_get_no_for_every_action(outsider):
    from django.contrib.auth.models import AnonymousUser

    project, _ = project_with_model("closed")
    endpoint = endpoint_in(project, "scorer")
    assert _agree(outsider, endpoint) == dict.fromkeys(ACTIONS, False)
    assert not AnonymousUser().has_perm("endpoints.view_endpoint", endpoint)


def test_platform_admins_may_do_everything_through_has_perm(admin_user):
    project, _ = project_with_model("any")
    assert _agree(admin_user, endpoint_in(project, "scorer")) == dict.fromkeys(ACTIONS, True)


def test_a_permission_of_another_model_never_matches_the_object(alice):
    project, _ = project_with_model("mismatch")
    endpoint = endpoint_in(project, "scorer")
    grants.grant_create(actor=None, role="owner", target=project, user=alice, reason="owner")
    assert alice.has_perm("endpoints.view_endpoint", endpoint)
    assert not alice.has_perm("endpoints.view_project", endpoint)
    assert not alice.has_perm("audit.view_endpoint", endpoint)
    assert alice.get_all_permissions(endpoint) == {
        "endpoints.view_endpoint", "endpoints.deploy_endpoint", "endpoints.infer_endpoint", "endpoints.manage_endpoint"}
