"""A locked-out person who forgot their password: the admin sees the lockout on their page,
resets their sign-in, copies the new one-time link; the person sets a password with it and
signs in. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.fixtures.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a brand new long passphrase 7"


def _fail_sign_in(page, live_server, times):
    for _ in range(times):
        page.goto(live_server.url + reverse("login"))
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("not what I chose")
        page.get_by_role("button", name="Sign in").click()


@pytest.mark.slow
def test_admin_resets_a_locked_out_persons_sign_in_and_they_set_a_new_password(
        console_page, live_server, admin_user, alice, browser_issues, settings):
    browser_issues.allow(r"status of 429")
    page = console_page
    _fail_sign_in(page, live_server, settings.AXES_FAILURE_LIMIT)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in temporarily locked")

    # Axes locks (username, address) pairs: the admin still signs in from the same browser.
    login(page, live_server, "admin", "correct horse battery staple")
    page.goto(live_server.url + reverse("access:user-detail", args=[alice.pk]))
    expect(page.get_by_text("Locked out after")).to_contain_text(f"{settings.AXES_FAILURE_LIMIT} failed sign-ins")
    expect(page.get_by_role("button", name="Unlock")).to_be_visible()
    screenshot(page, "user-locked-out")

    page.get_by_role("link", name="Reset sign-in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reset the sign-in of alice")
    page.get_by_label("Reason").fill("forgot password, called the help desk")
    page.get_by_role("button", name="Reset sign-in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Copy the sign-in link now")
    link = page.get_by_label("One-time link").input_value()
    assert "/accounts/invite/" in link
    screenshot(page, "sign-in-link")
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_text("Locked out after")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()

    # Alice opens the link, sets a password and signs in.
    page.goto(link)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_text("Password set. Sign in with it now.")).to_be_visible()
    login(page, live_server, "alice", NEW_PASSWORD)
    page.get_by_role("button", name="Sign out").click()

    # The link worked once.
    page.goto(link)
    expect(page.get_by_text("This link is no longer valid")).to_be_visible()
