"""Journey — single sign-on (issue #18): a platform admin, on a break-glass local password
(``LOCAL_PASSWORD_SIGN_IN=admins``), maps the provider group "Fraud" to the team that may view
project "fraud" through the admin pages; a new employee, nina, signs in through the OpenID
Provider (the real ``oidc-provider``, tests/oidc/provider.mjs), is created on the way with the
team from her groups claim and sees the project's model; the admin finds her linked provider
account on her user page; nina leaves the group at the provider and, at the next re-check, the
team and the model are gone while she stays signed in; she signs out of the console and the
provider.

Screenshots: test-output/e2e/sso/NN-<step>.png.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from console.access import grants, services
from tests.endpoints.endpoint_factories import ProjectFactory, RegisteredModelFactory
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login
from tests.fixtures.oidc import browser_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "nina's provider password"


@pytest.mark.slow
def test_a_new_employee_signs_in_through_the_provider_and_follows_her_groups(
        console_page, journey, live_server, sso_live, settings, admin_user):
    settings.LOCAL_PASSWORD_SIGN_IN = "admins"
    page = console_page
    steps = journey("sso")
    project = ProjectFactory(name="fraud", namespace="fraud")
    RegisteredModelFactory(project=project, name="card-fraud")
    team = services.team_create(actor=admin_user, name="fraud-analysts")
    grants.grant_create(actor=admin_user, role="viewer", target=project, group=team, reason="analysts read")
    sub = sso_live.add_user("nina", PASSWORD, groups=["Fraud", "Everyone"], given_name="Nina")

    # --- 1. The admin (break-glass password) maps the provider group to the team. ---------------
    login(page, live_server, "admin", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("access:group-mapping-list"))
    page.get_by_role("link", name="Map a group").click()
    page.get_by_label("Identity provider").select_option("oidc")
    page.get_by_label("Group at the provider").fill("Fraud")
    page.get_by_label("Console team or global role").select_option(label="fraud-analysts (team)")
    page.get_by_role("button", name="Create mapping").click()
    expect(page.get_by_role("table")).to_contain_text("Fraud")
    expect(page.get_by_role("table")).to_contain_text("fraud-analysts")
    steps.step("admin maps the provider group")
    page.get_by_role("button", name="Sign out").click()

    # --- 2. nina signs in through the provider: created, in the team, sees the model. -----------
    expect(page.get_by_role("link", name="Sign in with Test IdP")).to_be_visible()
    steps.step("sign-in page with the provider button")
    browser_sign_in(page, "Test IdP", "nina", PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    nina = get_user_model().objects.get(username="nina")
    assert list(nina.groups.values_list("name", flat=True)) == ["fraud-analysts"]
    page.goto(live_server.url + reverse("endpoints:model-list"))
    expect(page.get_by_role("link", name="card-fraud")).to_be_visible()
    steps.step("nina sees the team's model")

    # --- 3. nina leaves the group at the provider: the next re-check takes the team away. -------
    sso_live.set_groups(sub, ["Everyone"])
    settings.OIDC_RECHECK_SECONDS = 0
    page.reload()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()  # still signed in
    expect(page.get_by_role("link", name="card-fraud")).to_have_count(0)
    assert not nina.groups.exists()
    steps.step("after the re-check the model is gone")
    settings.OIDC_RECHECK_SECONDS = 900

    # --- 4. Sign out of the console and the provider. -----------------------------------------
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/accounts/login/"))
    steps.step("signed out of both")

    # --- 5. The admin sees nina's linked provider account and the groups last seen. -----------
    login(page, live_server, "admin", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("access:user-detail", args=[nina.pk]))
    identities = page.get_by_role("region", name="Linked sign-in accounts")
    expect(identities).to_contain_text(sso_live.issuer)
    expect(identities).to_contain_text("Everyone")
    steps.step("admin sees the linked account")
