"""The OpenID Connect flow in a browser against the real provider (tests/oidc/provider.mjs):
sign in with the button on the sign-in page, the user created with the teams of their groups
claim, sign out of the console and the provider (RP-initiated logout), a refusal shown on the
sign-in page, and a re-check that ends the session of a person disabled at the provider."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from audit.models import AuditEvent
from console.access import identity
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery"
User = get_user_model()


def test_sign_in_teams_and_sign_out_through_the_provider(console_page, live_server, sso_live, admin_user):
    from tests.fixtures.oidc import browser_sign_in

    page = console_page
    team = Group.objects.create(name="fraud-analysts")
    identity.group_mapping_create(actor=admin_user, source="oidc", external_group="Fraud", group=team)
    sso_live.add_user("fiona", PASSWORD, groups=["Fraud", "Staff"], given_name="Fiona")

    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.get_by_role("link", name="Sign in with Test IdP")).to_be_visible()
    # A wrong password is refused by the provider itself.
    browser_sign_in(page, "Test IdP", "fiona", "not her password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    page.get_by_label("User name").fill("fiona")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    fiona = User.objects.get(username="fiona")
    assert [g.name for g in fiona.groups.all()] == ["fraud-analysts"]
    assert fiona.external_identities.get().issuer == sso_live.issuer

    # Sign out: the console session ends, then the provider's (it asks to confirm).
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/accounts/login/"))
    expect(page.get_by_role("link", name="Sign in with Test IdP")).to_be_visible()
    # The provider's session is gone too: it asks for the password again.
    page.get_by_role("link", name="Sign in with Test IdP").click()
    expect(page.get_by_label("Password")).to_be_visible()


def test_a_refused_sign_in_is_shown_on_the_sign_in_page(console_page, live_server, sso_live):
    from tests.fixtures.oidc import browser_sign_in

    page = console_page
    UserFactory(username="gina")  # a local account with the same user name, not linked
    sso_live.add_user("gina", PASSWORD)
    page.goto(f"{live_server.url}/accounts/login/")
    browser_sign_in(page, "Test IdP", "gina", PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.get_by_text("A console account named 'gina' exists and is not linked")).to_be_visible()
    assert AuditEvent.objects.filter(action="login.failed", details__reason="username_collision").exists()


def test_a_person_disabled_at_the_provider_is_signed_out_at_the_next_recheck(
        console_page, live_server, sso_live, settings):
    from tests.fixtures.oidc import browser_sign_in

    page = console_page
    sub = sso_live.add_user("hank", PASSWORD)
    page.goto(f"{live_server.url}/accounts/login/")
    browser_sign_in(page, "Test IdP", "hank", PASSWORD)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    sso_live.disable(sub)
    settings.OIDC_RECHECK_SECONDS = 0
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/accounts/login/"))
    expect(page.get_by_text("no longer accepts your sign-in")).to_be_visible()
