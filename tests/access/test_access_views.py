"""The access pages: users (invite, service accounts, deactivation), teams, grants on an
object with "who can access this and why", "what can this user reach", the check form and
self-service tokens — with bounded query counts on every list."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from console.access import grants, selectors, services, tokens
from console.access.models import ApiToken, Grant
from tests.console.access_factories import endpoint_in, project_with_model
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def fraud():
    project, _ = project_with_model("fraud")
    return project


def test_access_appears_in_the_navigation_of_platform_admins_only(admin_client, alice):
    assert reverse("access:access-overview") in admin_client.get(reverse("home")).content.decode()
    other = Client()
    other.force_login(alice)
    assert reverse("access:access-overview") not in other.get(reverse("home")).content.decode()


def test_the_overview_lists_roles_and_grants_expiring_soon(admin_client, alice, fraud):
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="audit week",
                        expires_at=timezone.now() + timedelta(days=2))
    body = admin_client.get(reverse("access:access-overview")).content.decode()
    assert "view, deploy, infer, manage" in body and "audit week" in body


def test_an_invited_person_sets_a_password_through_the_one_time_link(admin_client):
    response = admin_client.post(reverse("access:user-create"), {
        "kind": "person", "username": "dora", "email": "dora@example.com", "global_roles": ["Auditor"]}, follow=True)
    link = re.search(r"(http://testserver/accounts/invite/[^ <]+/)", response.content.decode()).group(1)
    visitor = Client()
    form_page = visitor.get(link, follow=True)
    assert form_page.status_code == 200
    done = visitor.post(form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
                        {"new_password1": "a fine long passphrase 42", "new_password2": "a fine long passphrase 42"})
    assert done.status_code == 302
    event = AuditEvent.objects.get(action="user.password_set")
    assert event.actor_name == "dora" and event.details == {"via": "one-time link"}
    signed_in = Client()
    signed_in.post(reverse("login"), {"username": "dora", "password": "a fine long passphrase 42"})
    assert signed_in.get(reverse("home")).status_code == 200
    assert visitor.get(link, follow=True).context["validlink"] is False  # used once


def test_a_service_account_gets_a_token_shown_once(admin_client):
    response = admin_client.post(reverse("access:user-create"), {"kind": "service", "username": "scorer-client"})
    robot = selectors.user_list(search="scorer-client").get()
    assert response.status_code == 302 and robot.is_service_account and not robot.has_usable_password()
    page = admin_client.post(reverse("access:service-token-create", args=[robot.pk]),
                             {"name": "prod", "scopes": ["infer"], "expires": "30"})
    plaintext = re.search(r'value="(icn_[^"]+)"', page.content.decode()).group(1)
    assert page["Cache-Control"] == "no-store"
    assert tokens.authenticate_bearer(f"Bearer {plaintext}")[0] == robot
    detail = admin_client.get(reverse("access:user-detail", args=[robot.pk])).content.decode()
    assert plaintext not in detail and ApiToken.objects.get(user=robot).display_prefix in detail


def test_deactivating_ends_sessions_and_revokes_tokens(admin_client, alice):
    session = Client()
    session.force_login(alice)
    assert session.get(reverse("home")).status_code == 200
    _, plaintext = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    response = admin_client.post(reverse("access:user-deactivate", args=[alice.pk]), {"reason": "left"})
    assert response.status_code == 302
    assert session.get(reverse("home")).status_code == 302  # signed out
    assert tokens.authenticate_bearer(f"Bearer {plaintext}") is None
    assert ApiToken.objects.get(user=alice).revoked_at is not None


def test_admins_cannot_deactivate_themselves(admin_client, admin_user):
    response = admin_client.post(reverse("access:user-deactivate", args=[admin_user.pk]), {"reason": ""})
    assert response.status_code == 200 and "cannot deactivate your own" in response.content.decode()


def test_global_roles_are_set_on_the_user_page(admin_client, alice):
    admin_client.post(reverse("access:user-roles", args=[alice.pk]), {"global_roles": ["Auditor", "Ingester"]})
    assert sorted(g.name for g in alice.groups.all()) == ["Auditor", "Ingester"]


def test_granting_a_team_on_the_project_page_with_expiry_and_reason(admin_client, alice, fraud):
    endpoint = endpoint_in(fraud, "scorer")
    team = services.team_create(actor=None, name="risk", members=[alice])
    expiry = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    url = reverse("access:project-access", args=["fraud"])
    response = admin_client.post(url, {"team": team.pk, "role": "deployer", "expires_at": expiry,
                                       "reason": "Q3 launch"})
    assert response.status_code == 302
    grant = Grant.objects.get(group=team)
    assert grant.role == "deployer" and grant.reason == "Q3 launch" and grant.expires_at is not None
    body = admin_client.get(url).content.decode()
    assert "Q3 launch" in body and "Deployer on project fraud, through team risk" in body
    member = Client()
    member.force_login(alice)
    detail = reverse("endpoints:endpoint-detail", args=["fraud", endpoint.name])
    assert member.get(detail).status_code == 200
    admin_client.post(reverse("access:grant-revoke", args=[grant.pk]), {"reason": "done"})
    assert member.get(detail).status_code == 404


def test_a_grant_form_without_reason_or_principal_shows_errors(admin_client, alice, fraud):
    url = reverse("access:project-access", args=["fraud"])
    response = admin_client.post(url, {"role": "viewer", "reason": ""})
    assert response.status_code == 200
    assert not Grant.objects.exists()
    assert "Choose either a user or a team" in response.content.decode()


def test_a_project_owner_manages_access_without_being_an_admin(alice, bob, fraud):
    grants.grant_create(actor=None, role="owner", target=fraud, user=alice, reason="lead")
    owner = Client()
    owner.force_login(alice)
    response = owner.post(reverse("access:project-access", args=["fraud"]),
                          {"user": bob.pk, "role": "viewer", "reason": "reviews models"})
    assert response.status_code == 302 and Grant.objects.filter(user=bob, role="viewer").exists()


def test_who_can_access_traces_each_permission_to_its_grant_or_team(admin_client, alice, bob, fraud, admin_user):
    endpoint = endpoint_in(fraud, "scorer")
    team = services.team_create(actor=None, name="callers", members=[bob])
    grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="x")
    grants.grant_create(actor=None, role="caller", target=endpoint, group=team, reason="x")
    body = admin_client.get(reverse("access:endpoint-access", args=["fraud", "scorer"])).content.decode()
    assert "Viewer on project fraud" in body
    assert "Caller on endpoint fraud/scorer, through team callers" in body
    assert "Platform admin (global role)" in body or "superuser" in body


def test_what_a_user_can_reach_names_objects_and_reasons(admin_client, alice, fraud):
    endpoint_in(fraud, "a")
    endpoint_in(fraud, "b")
    grants.grant_create(actor=None, role="deployer", target=fraud, user=alice, reason="x")
    body = admin_client.get(reverse("access:user-detail", args=[alice.pk])).content.decode()
    assert "covers its 2 endpoint(s)" in body and "Deployer on project fraud" in body


def test_the_check_form_explains_allow_and_deny(admin_client, alice, bob, fraud):
    endpoint_in(fraud, "scorer")
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="x",
                        expires_at=timezone.now() + timedelta(days=1))
    url = reverse("access:check-access")
    allowed = admin_client.get(url, {"user": alice.pk, "endpoint": "fraud/scorer", "action": "infer"})
    assert 'data-check-result="allowed"' in allowed.content.decode() and "Caller on project fraud" in allowed.content.decode()
    denied = admin_client.get(url, {"user": bob.pk, "endpoint": "fraud/scorer", "action": "infer"})
    assert 'data-check-result="denied"' in denied.content.decode()
    unknown = admin_client.get(url, {"user": bob.pk, "endpoint": "fraud/nope", "action": "infer"})
    assert "There is no endpoint fraud/nope" in unknown.content.decode()


def test_self_service_tokens_are_shown_once_then_listed_by_prefix_and_revocable(client, alice):
    client.force_login(alice)
    created = client.post(reverse("access:token-list"), {"name": "notebook", "scopes": ["read", "deploy"],
                                                          "expires": "7"})
    plaintext = re.search(r'value="(icn_[^"]+)"', created.content.decode()).group(1)
    listing = client.get(reverse("access:token-list")).content.decode()
    token = ApiToken.objects.get(user=alice)
    assert plaintext not in listing and token.display_prefix in listing and "deploy, read" in listing
    client.post(reverse("access:token-revoke", args=[token.pk]))
    assert tokens.authenticate_bearer(f"Bearer {plaintext}") is None


def test_someone_elses_token_cannot_be_revoked(client, alice, bob):
    token, _ = tokens.token_create(actor=bob, user=bob, name="mine", scopes=["read"])
    client.force_login(alice)
    assert client.post(reverse("access:token-revoke", args=[token.pk])).status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


# --- query counts: bounded, whatever the number of rows -------------------------------------------------

def _queries(django_assert_max_num_queries, client, url, limit):
    with django_assert_max_num_queries(limit):
        response = client.get(url)
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("rows", [3, 30])
def test_list_pages_cost_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries, fraud, rows):
    endpoint = endpoint_in(fraud, "scorer")
    team = services.team_create(actor=None, name="big")
    for i in range(rows):
        user = UserFactory(username=f"u{rows}-{i}")
        services.team_add_member(actor=None, team=team, user=user)
        grants.grant_create(actor=None, role="viewer", target=fraud, user=user, reason="x")
        grants.grant_create(actor=None, role="caller", target=endpoint, user=user, reason="x")
        tokens.token_create(actor=user, user=user, name="t", scopes=["read"])
    subject = UserFactory(username=f"subject-{rows}")
    services.team_add_member(actor=None, team=team, user=subject)
    grants.grant_create(actor=None, role="deployer", target=fraud, group=team, reason="x")
    _queries(django_assert_max_num_queries, admin_client, reverse("access:user-list"), 12)
    _queries(django_assert_max_num_queries, admin_client, reverse("access:team-list"), 12)
    _queries(django_assert_max_num_queries, admin_client, reverse("access:access-overview"), 20)
    _queries(django_assert_max_num_queries, admin_client, reverse("access:project-access", args=["fraud"]), 30)
    _queries(django_assert_max_num_queries, admin_client,
             reverse("access:endpoint-access", args=["fraud", "scorer"]), 30)
    _queries(django_assert_max_num_queries, admin_client, reverse("access:user-detail", args=[subject.pk]), 30)
    _queries(django_assert_max_num_queries, admin_client, reverse("access:team-detail", args=[team.pk]), 20)
    _queries(django_assert_max_num_queries, admin_client, reverse("api-grant-list"), 12)
    _queries(django_assert_max_num_queries, admin_client, reverse("api-user-list"), 12)
    _queries(django_assert_max_num_queries, admin_client, reverse("api-endpoint-access-detail", args=[endpoint.pk]), 30)
