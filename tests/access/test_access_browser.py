"""A platform admin gives a team Deployer on a project with an expiry and a reason; a team
member then sees the project's endpoints; the admin revokes and the member gets 404.
Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from console.access import services
from console.access.models import Grant
from tests.console.access_factories import endpoint_in, project_with_model
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


@pytest.mark.slow
def test_admin_grants_a_team_deployer_then_revokes_and_the_member_loses_the_endpoints(
        console_page, live_server, admin_user, alice, browser_issues):
    page = console_page
    project, _ = project_with_model("fraud")
    endpoint = endpoint_in(project, "scorer")
    services.team_create(actor=admin_user, name="risk-team", members=[alice])
    detail = live_server.url + reverse("endpoints:endpoint-detail", args=["fraud", endpoint.name])

    # 1. The admin opens Access, then the project's access page, and grants the team.
    login(page, live_server, "admin", DEFAULT_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Access").click()
    expect(page.get_by_role("heading", name="Access", exact=True)).to_be_visible()
    page.goto(live_server.url + reverse("access:project-access", args=["fraud"]))
    page.get_by_label("Team").select_option(label="risk-team")
    page.get_by_label("Role").select_option(label="Deployer")
    page.get_by_label("Expires at (UTC)").fill("2031-06-30T18:00")
    page.get_by_label("Reason").fill("Fraud model launch, Q3")
    screenshot(page, "access-01-grant-form")
    page.get_by_role("button", name="Grant").click()
    expect(page.get_by_text("Granted: Deployer on project fraud to team risk-team.")).to_be_visible()
    grants_table = page.locator("table[data-grants]")
    expect(grants_table).to_contain_text("risk-team")
    expect(grants_table).to_contain_text("Fraud model launch, Q3")
    expect(grants_table).to_contain_text("2031-06-30 18:00")
    expect(page.locator("table[data-who]")).to_contain_text("Deployer on project fraud, through team risk-team")
    screenshot(page, "access-02-granted")
    grant = Grant.objects.get(group__name="risk-team")
    assert grant.role == "deployer" and grant.expires_at.year == 2031
    sign_out(page)

    # 2. The team member sees the project's endpoint.
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:endpoint-list"))
    expect(page.get_by_role("link", name=endpoint.name).first).to_be_visible()
    page.goto(detail)
    expect(page.get_by_role("heading", name=endpoint.name).first).to_be_visible()
    screenshot(page, "access-03-member-sees-endpoint")
    sign_out(page)

    # 3. The admin revokes the grant.
    login(page, live_server, "admin", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("access:project-access", args=["fraud"]))
    page.locator("table[data-grants]").get_by_role("link", name="Revoke").click()
    page.get_by_label("Reason").fill("Launch done")
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Access ends now.")).to_be_visible()
    expect(page.get_by_text("No live grants on this object itself.")).to_be_visible()
    screenshot(page, "access-04-revoked")
    sign_out(page)

    # 4. The member now gets 404 for the endpoint and no longer sees it listed.
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    browser_issues.allow(r"404")
    response = page.goto(detail)
    assert response.status == 404
    page.goto(live_server.url + reverse("endpoints:endpoint-list"))
    expect(page.get_by_role("link", name=endpoint.name)).to_have_count(0)
    screenshot(page, "access-05-member-404")
