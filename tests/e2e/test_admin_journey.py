"""Journey 2 — a platform admin:

create a service account and a team, add the account to the team, grant the team Viewer on
project "fraud" with an expiry date and a reason, read "who can access this and why" for the
project and for an endpoint inside it, issue the account an API token (shown once), prove the
token works with real HTTP requests to /api/v1/ from outside the browser, revoke the grant and
see it gone from the page — and from what the same token can reach.

Screenshots: test-output/e2e/admin/NN-<step>.png.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from console.access.models import ApiToken, Grant
from tests.console.access_factories import endpoint_in, project_with_model
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def api_get(live_server, path: str, token: str) -> tuple[int, dict]:
    """GET an API path with a bearer token, as a CI job would (plain HTTP, no browser)."""
    request = urllib.request.Request(live_server.url + path, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback live server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.slow
def test_admin_sets_up_a_team_grant_a_service_account_token_and_revokes(
        console_page, journey, live_server, admin_user):
    page = console_page
    steps = journey("admin")
    project, _ = project_with_model("fraud")
    scorer = endpoint_in(project, "scorer")
    login(page, live_server, "admin", DEFAULT_PASSWORD)

    # --- 1. A service account (it will hold the API token). --------------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Access").click()
    expect(page.get_by_role("heading", name="Access", exact=True)).to_be_visible()
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_role("link", name="Create a user or service account").click()
    page.get_by_label("A service account (API tokens only, never signs in)").check()
    page.get_by_label("Username").fill("ci-reader")
    page.get_by_label("Description").fill("Nightly CI: reads endpoint status")
    steps.step("create service account")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("Service account ci-reader created.")).to_be_visible()
    account_url = page.url

    # --- 2. A team, with the service account as its member. --------------------------------------
    page.goto(live_server.url + reverse("access:team-list"))
    page.get_by_role("link", name="Create a team").click()
    page.get_by_label("Name").fill("risk-team")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("Team risk-team created.")).to_be_visible()
    page.get_by_label("Add a member").select_option(label="ci-reader (service account)")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_text("ci-reader added to risk-team.")).to_be_visible()
    expect(page.locator("[data-members]")).to_contain_text("ci-reader")
    steps.step("team with member")

    # --- 3. Grant the team Viewer on the project, with an expiry and a reason. --------------------
    page.goto(live_server.url + reverse("access:access-overview"))
    page.get_by_role("link", name="fraud", exact=True).click()
    expect(page.get_by_role("heading", name="Access to project fraud")).to_be_visible()
    page.get_by_label("Team").select_option(label="risk-team")
    page.get_by_label("Role").select_option(label="Viewer")
    page.get_by_label("Expires at (UTC)").fill("2031-06-30T18:00")
    page.get_by_label("Reason").fill("Nightly CI reads endpoint status")
    steps.step("grant form")
    page.get_by_role("button", name="Grant").click()
    expect(page.get_by_text("Granted: Viewer on project fraud to team risk-team.")).to_be_visible()
    project_access_url = page.url

    # --- 4. Who can access the project, and an endpoint in it, and why. ---------------------------
    grants_table = page.locator("table[data-grants]")
    grant_row = grants_table.get_by_role("row").filter(has_text="risk-team")
    expect(grant_row).to_contain_text("Viewer")
    expect(grant_row).to_contain_text("Nightly CI reads endpoint status")
    expect(grant_row).to_contain_text("2031-06-30 18:00 UTC")
    who = page.locator("table[data-who]")
    expect(who.get_by_role("row").filter(has_text="ci-reader")).to_contain_text(
        "Viewer on project fraud, through team risk-team")
    steps.step("who can access the project")

    page.get_by_role("link", name="scorer", exact=True).click()
    expect(page.get_by_role("heading", name="Access to endpoint fraud/scorer")).to_be_visible()
    expect(page.locator("table[data-who]").get_by_role("row").filter(has_text="ci-reader")).to_contain_text(
        "Viewer on project fraud, through team risk-team, until 2031-06-30 18:00 UTC")
    steps.step("who can access the endpoint")

    # --- 5. An API token for the service account, shown once. -------------------------------------
    page.goto(account_url)
    page.get_by_role("link", name="Create API token").click()
    page.get_by_label("Name").fill("nightly-ci")
    page.get_by_label("read — GET the API").check()
    page.get_by_label("Expires after").select_option(label="30 days")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Copy the token now")).to_be_visible()
    plaintext = page.get_by_label("Token", exact=True).input_value()
    assert plaintext.startswith("icn_"), plaintext
    steps.step("token shown once")
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    token = ApiToken.objects.get(user__username="ci-reader")
    expect(page.get_by_text(f"{token.display_prefix}…").first).to_be_visible()
    assert plaintext not in page.content(), "the token must not be shown again"
    steps.step("token listed by prefix only")

    # --- 6. The token works against the API: the team's grant lets it see the endpoint. -----------
    status, me = api_get(live_server, "/api/v1/me/", plaintext)
    assert status == 200 and me["username"] == "ci-reader", (status, me)
    status, listing = api_get(live_server, "/api/v1/endpoints/?project=fraud", plaintext)
    assert status == 200, (status, listing)
    assert [e["name"] for e in listing["results"]] == ["scorer"]
    status, detail = api_get(live_server, f"/api/v1/endpoints/{scorer.pk}/", plaintext)
    assert status == 200 and detail["name"] == "scorer", (status, detail)

    # --- 7. Revoke the grant: gone from the page and from what the token reaches. -----------------
    page.goto(live_server.url + project_access_url.removeprefix(live_server.url))
    grants_table.get_by_role("row").filter(has_text="risk-team").get_by_role("link", name="Revoke").click()
    page.get_by_label("Reason").fill("CI moved to its own project")
    steps.step("revoke confirmation")
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Access ends now.")).to_be_visible()
    expect(page.get_by_text("No live grants on this object itself.")).to_be_visible()
    expect(page.locator("table[data-who]")).not_to_contain_text("ci-reader")
    steps.step("grant revoked")
    page.get_by_role("link", name="Also show revoked and expired grants").click()
    expect(page.locator("table[data-grants]").get_by_role("row").filter(has_text="risk-team")).to_contain_text(
        "revoked")
    steps.step("revoked grant on record")
    assert Grant.objects.get(group__name="risk-team").revoked_at is not None

    status, me = api_get(live_server, "/api/v1/me/", plaintext)
    assert status == 200 and me["username"] == "ci-reader", "the token itself is still valid"
    status, listing = api_get(live_server, "/api/v1/endpoints/?project=fraud", plaintext)
    assert status == 200 and listing["results"] == [], listing
    status, _ = api_get(live_server, f"/api/v1/endpoints/{scorer.pk}/", plaintext)
    assert status == 404
