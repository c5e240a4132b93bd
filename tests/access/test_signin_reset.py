"""Helping people who cannot sign in: "Reset sign-in" (new one-time link; old password,
sessions and links dead; lockout lifted) and "Unlock" (lockout lifted, password kept) on the
user page — from the admin's side and the attacker's."""

from __future__ import annotations

import re

import pytest
from axes.models import AccessAttempt
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from console.access import grants, roles, services
from tests.console.access_factories import project_with_model
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new long passphrase 7"
LINK = re.compile(r'value="(http://testserver/accounts/invite/[^"]+/)"')


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _login(username, password, address="10.9.0.1", client=None):
    client = client or Client()
    response = client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)
    return client, response


def _signed_in(client) -> bool:
    return client.get(reverse("home")).status_code == 200


def _lock_out(username, settings, address="10.9.0.1"):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(username, "wrong guess", address)
    assert _login(username, DEFAULT_PASSWORD, address)[1].status_code == 429


def _link_works(link, password=NEW_PASSWORD) -> bool:
    """Open a one-time link and set a password through it, as the invited person does."""
    visitor = Client()
    page = visitor.get(link, follow=True)
    if not page.context["validlink"]:
        return False
    done = visitor.post(page.redirect_chain[-1][0], {"new_password1": password, "new_password2": password})
    return done.status_code == 302


def _reset(admin_client, user, reason="forgot their password"):
    return admin_client.post(reverse("access:user-sign-in-reset", args=[user.pk]), {"reason": reason})


# --- reset sign-in ------------------------------------------------------------------------------

def test_reset_kills_password_sessions_and_old_links_and_the_new_link_works_once(admin_client, admin_user, alice):
    session, response = _login("alice", DEFAULT_PASSWORD)
    assert response.status_code == 302 and _signed_in(session)
    old_link = services.user_invite_link(user=alice, base_url="http://testserver")

    page = _reset(admin_client, alice)
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    link = LINK.search(page.content.decode()).group(1)
    assert link != old_link

    assert not _signed_in(session)  # the old session is gone
    assert _login("alice", DEFAULT_PASSWORD)[1].status_code == 200  # the old password is refused
    assert not _link_works(old_link)  # an earlier invite link no longer works
    assert _link_works(link)  # the new one does, once
    assert not _link_works(link, "yet another passphrase 99")
    fresh, response = _login("alice", NEW_PASSWORD)
    assert response.status_code == 302 and _signed_in(fresh)

    event = AuditEvent.objects.get(action="user.sign_in_reset")
    assert event.actor_id == str(admin_user.pk) and event.target_id == str(alice.pk)
    assert event.details["reason"] == "forgot their password"
    assert event.details["sessions_ended"] == 1 and event.details["had_usable_password"] is True


def test_the_reset_link_is_shown_only_on_the_response_never_on_the_user_page(admin_client, alice):
    link = LINK.search(_reset(admin_client, alice).content.decode()).group(1)
    detail = admin_client.get(reverse("access:user-detail", args=[alice.pk])).content.decode()
    assert link not in detail and "/accounts/invite/" not in detail


def test_a_lost_reset_link_is_replaced_by_resetting_again(admin_client, alice):
    first = LINK.search(_reset(admin_client, alice).content.decode()).group(1)
    second = LINK.search(_reset(admin_client, alice).content.decode()).group(1)
    assert not _link_works(first)
    assert _link_works(second)


def test_reset_also_lifts_the_lockout(admin_client, alice, settings):
    _lock_out("alice", settings)
    link = LINK.search(_reset(admin_client, alice).content.decode()).group(1)
    assert not AccessAttempt.objects.filter(username="alice").exists()
    assert _link_works(link)
    assert _login("alice", NEW_PASSWORD)[1].status_code == 302  # from the address that was locked
    assert AuditEvent.objects.get(action="user.sign_in_reset").details["was_locked_out"] is True


def test_the_confirmation_page_changes_nothing(admin_client, alice):
    session, _ = _login("alice", DEFAULT_PASSWORD)
    password = alice.password
    page = admin_client.get(reverse("access:user-sign-in-reset", args=[alice.pk]))
    assert page.status_code == 200 and "Their current password stops working now." in page.content.decode()
    assert "/accounts/invite/" not in page.content.decode()
    alice.refresh_from_db()
    assert alice.password == password and _signed_in(session)
    assert not AuditEvent.objects.filter(action="user.sign_in_reset").exists()


def test_the_user_page_offers_reset_sign_in(admin_client, alice):
    body = admin_client.get(reverse("access:user-detail", args=[alice.pk])).content.decode()
    assert reverse("access:user-sign-in-reset", args=[alice.pk]) in body and "Reset sign-in" in body


def test_service_accounts_get_no_reset(admin_client, service_account):
    body = admin_client.get(reverse("access:user-detail", args=[service_account.pk])).content.decode()
    assert "Reset sign-in" not in body
    url = reverse("access:user-sign-in-reset", args=[service_account.pk])
    assert admin_client.get(url).status_code == 404
    assert admin_client.post(url, {"reason": "x"}).status_code == 404
    with pytest.raises(ValidationError, match="never sign in"):
        services.user_sign_in_reset(actor=None, user=service_account)


def test_deactivated_accounts_are_not_reset_and_the_page_says_why(admin_client, admin_user, alice):
    services.user_deactivate(actor=admin_user, user=alice)
    body = admin_client.get(reverse("access:user-detail", args=[alice.pk])).content.decode()
    assert reverse("access:user-sign-in-reset", args=[alice.pk]) not in body
    assert "deactivated: reactivate it first" in body
    password = alice.password
    response = _reset(admin_client, alice)
    assert response.status_code == 200 and "reactivate it first" in response.content.decode()
    assert not LINK.search(response.content.decode())
    alice.refresh_from_db()
    assert alice.password == password
    assert not AuditEvent.objects.filter(action="user.sign_in_reset").exists()


def test_admins_cannot_reset_their_own_sign_in(admin_client, admin_user):
    body = admin_client.get(reverse("access:user-detail", args=[admin_user.pk])).content.decode()
    assert reverse("access:user-sign-in-reset", args=[admin_user.pk]) not in body
    assert "cannot reset your own sign-in" in body
    response = _reset(admin_client, admin_user)
    assert response.status_code == 200 and "cannot reset your own sign-in" in response.content.decode()
    assert not LINK.search(response.content.decode())
    admin_user.refresh_from_db()
    assert admin_user.check_password(DEFAULT_PASSWORD) and _signed_in(admin_client)


def test_only_a_superuser_may_reset_a_superusers_sign_in(admin_user, alice):
    """A platform admin who is not a superuser cannot take over a superuser's account."""
    roles.ensure_global_roles()
    platform_admin = UserFactory(username="pat", roles=[roles.PLATFORM_ADMIN])
    client = Client()
    client.force_login(platform_admin)
    response = _reset(client, admin_user)
    assert response.status_code == 200 and "Only a superuser" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.check_password(DEFAULT_PASSWORD)
    assert LINK.search(_reset(client, alice).content.decode())  # other people: yes


def test_reset_and_its_audit_event_commit_together(admin_user, alice, monkeypatch):
    session, _ = _login("alice", DEFAULT_PASSWORD)

    def broken(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(services.audit, "record", broken)
    with pytest.raises(RuntimeError):
        services.user_sign_in_reset(actor=admin_user, user=alice)
    alice.refresh_from_db()
    assert alice.check_password(DEFAULT_PASSWORD) and _signed_in(session)


# --- lockout and unlock -------------------------------------------------------------------------

def test_the_user_page_says_when_someone_is_locked_out_and_until_when(admin_client, alice, settings):
    assert "Locked out" not in admin_client.get(reverse("access:user-detail", args=[alice.pk])).content.decode()
    _lock_out("alice", settings)
    body = admin_client.get(reverse("access:user-detail", args=[alice.pk])).content.decode()
    attempt = AccessAttempt.objects.get(username="alice")
    until = (attempt.attempt_time + settings.AXES_COOLOFF_TIME).strftime("%H:%M")
    # The correct password tried during the lock counts as one more failure.
    assert f"Locked out after {attempt.failures_since_start} failed sign-ins until {until} UTC" in body
    assert reverse("access:user-unlock", args=[alice.pk]) in body


def test_failures_spread_over_addresses_below_the_limit_are_no_lockout(admin_client, alice, settings):
    """Axes counts per (username, address): the page agrees with what the login does."""
    for address in ("10.9.0.1", "10.9.0.2"):
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            _login("alice", "wrong guess", address)
    assert services.sign_in_lockout(alice) is None
    assert "Locked out" not in admin_client.get(reverse("access:user-detail", args=[alice.pk])).content.decode()
    assert _login("alice", DEFAULT_PASSWORD, "10.9.0.1")[1].status_code == 302


def test_unlock_lets_a_locked_out_user_sign_in_with_their_password(admin_client, admin_user, alice, settings):
    _lock_out("alice", settings)
    _lock_out("alice", settings, address="10.9.0.2")
    password = alice.password
    response = admin_client.post(reverse("access:user-unlock", args=[alice.pk]))
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.password == password  # untouched
    assert _login("alice", DEFAULT_PASSWORD, "10.9.0.1")[1].status_code == 302
    assert _login("alice", DEFAULT_PASSWORD, "10.9.0.2")[1].status_code == 302
    event = AuditEvent.objects.get(action="user.unlock")
    assert event.actor_id == str(admin_user.pk) and event.target_id == str(alice.pk)
    assert event.details["was_locked_out"] is True and event.details["attempts_cleared"] == 2
    assert not AuditEvent.objects.filter(action="user.sign_in_reset").exists()


def test_unlock_with_nothing_to_clear_says_so_and_records_nothing(admin_client, alice):
    response = admin_client.post(reverse("access:user-unlock", args=[alice.pk]), follow=True)
    assert "was not locked out" in response.content.decode()
    assert not AuditEvent.objects.filter(action="user.unlock").exists()


def test_unlock_clears_only_that_username(admin_client, alice, bob, settings):
    _lock_out("alice", settings)
    _lock_out("bob", settings)
    admin_client.post(reverse("access:user-unlock", args=[alice.pk]))
    assert _login("alice", DEFAULT_PASSWORD)[1].status_code == 302
    assert _login("bob", DEFAULT_PASSWORD)[1].status_code == 429


def test_get_on_unlock_changes_nothing(admin_client, alice, settings):
    _lock_out("alice", settings)
    assert admin_client.get(reverse("access:user-unlock", args=[alice.pk])).status_code == 405
    assert AccessAttempt.objects.filter(username="alice").exists()
    assert _login("alice", DEFAULT_PASSWORD)[1].status_code == 429


# --- the attacker's side ------------------------------------------------------------------------

@pytest.fixture
def deployer(db):
    project, _ = project_with_model("fraud")
    user = UserFactory(username="dave")
    grants.grant_create(actor=None, role="deployer", target=project, user=user, reason="team work")
    return user


@pytest.mark.parametrize("who", ["deployer", "auditor", "alice"])
def test_nobody_but_a_platform_admin_may_reset_or_unlock(request, who, alice, settings):
    """A deployer, an auditor and the user themself: 403, and nothing changes."""
    _lock_out("alice", settings)
    session, _ = _login("alice", DEFAULT_PASSWORD, address="10.9.0.7")
    attacker = Client()
    attacker.force_login(request.getfixturevalue(who))
    reset_url = reverse("access:user-sign-in-reset", args=[alice.pk])
    unlock_url = reverse("access:user-unlock", args=[alice.pk])
    assert attacker.get(reset_url).status_code == 403
    assert attacker.post(reset_url, {"reason": "let me in"}).status_code == 403
    assert attacker.post(unlock_url).status_code == 403
    assert attacker.get(reverse("access:user-detail", args=[alice.pk])).status_code == 403
    alice.refresh_from_db()
    assert alice.check_password(DEFAULT_PASSWORD) and _signed_in(session)
    assert _login("alice", DEFAULT_PASSWORD)[1].status_code == 429  # still locked
    assert not AuditEvent.objects.filter(action__in=["user.sign_in_reset", "user.unlock"]).exists()


def test_anonymous_visitors_are_sent_to_sign_in(client, alice):
    for url in (reverse("access:user-sign-in-reset", args=[alice.pk]), reverse("access:user-unlock", args=[alice.pk])):
        response = client.post(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    alice.refresh_from_db()
    assert alice.check_password(DEFAULT_PASSWORD)


def test_reset_without_the_csrf_token_is_refused(admin_user, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(reverse("access:user-sign-in-reset", args=[alice.pk]), {"reason": "x"}).status_code == 403
    assert client.post(reverse("access:user-unlock", args=[alice.pk])).status_code == 403
    alice.refresh_from_db()
    assert alice.check_password(DEFAULT_PASSWORD)


def test_services_refuse_non_admin_actors(alice, bob):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.user_sign_in_reset(actor=bob, user=alice)
    with pytest.raises(PermissionDenied):
        services.user_unlock(actor=alice, user=alice)
