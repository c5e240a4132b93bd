"""Sign-in, sign-out and login throttling, from the user's and the attacker's side."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, username, password, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def test_login_with_correct_password_redirects_home_and_is_audited(client, alice):
    response = _login(client, "alice", DEFAULT_PASSWORD, REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest-agent")
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200
    event = AuditEvent.objects.get(action="login.success")
    assert event.actor_id == str(alice.pk)
    assert event.actor_name == "alice"
    assert event.source_ip == "10.1.2.3"
    assert event.user_agent == "pytest-agent"
    assert event.request_id


def test_wrong_password_shows_error_without_naming_which_field_and_is_audited(client, alice):
    response = _login(client, "alice", "not-the-password")
    assert response.status_code == 200
    assert b"correct username and password" in response.content
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="login.failed")
    assert event.actor_name == "alice"
    assert event.outcome == "failure"


def test_unknown_user_fails_like_a_wrong_password(client, db):
    response = _login(client, "nobody", "whatever-password")
    assert response.status_code == 200
    assert b"correct username and password" in response.content
    assert AuditEvent.objects.filter(action="login.failed", actor_name="nobody").exists()


def test_login_is_locked_after_repeated_failures_even_with_the_right_password(client, alice, settings):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert _login(client, "alice", "guess").status_code == 200
    locked = _login(client, "alice", "guess")
    assert locked.status_code == 429
    assert b"locked" in locked.content.lower()
    # The correct password does not get through while the lock holds.
    again = _login(client, "alice", DEFAULT_PASSWORD)
    assert again.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.locked_out", actor_name="alice").exists()


def test_lockout_is_per_username_and_address(client, alice, bob, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "alice", "guess", REMOTE_ADDR="10.0.0.1")
    assert _login(client, "alice", DEFAULT_PASSWORD, REMOTE_ADDR="10.0.0.1").status_code == 429
    # Another account from the same address, and the same account from elsewhere, still work.
    assert _login(client, "bob", DEFAULT_PASSWORD, REMOTE_ADDR="10.0.0.1").status_code == 302
    assert _login(client, "alice", DEFAULT_PASSWORD, REMOTE_ADDR="10.0.0.2").status_code == 302


def test_service_account_cannot_log_in_interactively(client, service_account):
    service_account.set_password("a-password-someone-set")
    service_account.save()
    response = _login(client, "ci-deployer", "a-password-someone-set")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_inactive_user_cannot_log_in(client, alice):
    alice.is_active = False
    alice.save()
    assert _login(client, "alice", DEFAULT_PASSWORD).status_code == 200
    assert "_auth_user_id" not in client.session


def test_logout_requires_post_and_is_audited(client, alice):
    client.force_login(alice)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("home")).status_code == 302
    assert AuditEvent.objects.filter(action="logout", actor_name="alice").exists()


def test_anonymous_visitor_is_sent_to_login(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_session_expires_at_browser_close_and_after_timeout(client, alice, settings):
    client.force_login(alice)
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_login_page_lists_no_usernames_and_has_csrf(client, alice):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content
    assert b"alice" not in response.content
