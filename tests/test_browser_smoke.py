"""Smoke test of the page shell in a real browser: sign in, home, sign out, API docs.

The console_page fixture fails any of these on a console error, a CSP violation or a request
that leaves the loopback host.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.base import Message
from django.core.paginator import Paginator
from django.core.validators import RegexValidator
from django.template import engines
from django.test import RequestFactory
from django.urls import reverse
from playwright.sync_api import expect

from tests.fixtures.browser import LOOPBACK_HOSTS, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "plum-orchard-telescope-41"


@pytest.fixture
def alice():
    return get_user_model().objects.create_user(
        username="alice", password=PASSWORD, first_name="Alice", last_name="Moreau"
    )


def test_user_signs_in_sees_home_and_signs_out(console_page, live_server, alice):
    page = console_page
    page.goto(live_server.url + reverse("home"))
    # Anonymous visitors are sent to the sign-in page.
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()

    login(page, live_server, "alice", PASSWORD)

    expect(page).to_have_url(live_server.url + reverse("home"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Alice")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    # Home offers a card for every place the navigation leads to.
    nav_labels = nav.get_by_role("link").all_inner_texts()
    assert nav_labels[0] == "Home"
    if len(nav_labels) > 1:
        areas = page.get_by_role("region", name="Where to go")
        expect(areas.get_by_role("link")).to_have_text(nav_labels[1:])
    expect(page.locator(".user-name")).to_have_text("Signed in as Alice Moreau")
    expect(page.get_by_role("heading", name="Your global roles")).to_be_visible()
    expect(page.get_by_text("You have no global role.")).to_be_visible()
    expect(page.get_by_role("contentinfo").get_by_role("link", name="API documentation")).to_have_attribute(
        "href", reverse("api-docs")
    )
    # Styles and scripts loaded: the stylesheet applied, console.js ran (it reveals nothing
    # here, but htmx is defined and the CSRF meta tag is present for it). The scripts are
    # deferred, so they run once the document is parsed -- which can be after the headings
    # above are already visible: wait for them (a script that never loads times out here).
    page.wait_for_function("typeof window.htmx === 'object'", timeout=10_000)
    assert page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert page.evaluate("getComputedStyle(document.querySelector('.site-header')).display") == "block"
    screenshot(page, "home")

    page.set_viewport_size({"width": 768, "height": 1024})
    expect(nav).to_be_visible()
    screenshot(page, "home-tablet")

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(live_server.url + reverse("login"))
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    # The session is gone, not just the page: home sends us back to sign in.
    page.goto(live_server.url + reverse("home"))
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()


def test_wrong_password_and_unknown_user_get_the_same_answer(console_page, live_server, alice):
    page = console_page
    answers = []
    for username, password in [("alice", "not-her-password-at-all"), ("nobody-here", PASSWORD)]:
        page.goto(live_server.url + reverse("login"))
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        answers.append(alert.inner_text().strip())
        # The username is kept, the password is not.
        expect(page.get_by_label("Username")).to_have_value(username)
        expect(page.get_by_label("Password")).to_have_value("")
    assert answers[0] == answers[1]
    assert "alice" not in answers[0].lower()
    screenshot(page, "login-error")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url_name", "title_locator"),
    [
        ("api-docs", ".swagger-ui .info .title"),
        ("api-redoc", "redoc h1"),
    ],
)
def test_api_documentation_renders_from_loopback_only(
    console_page, live_server, alice, browser_issues, url_name, title_locator
):
    page = console_page
    requested = []
    page.on("request", lambda req: requested.append(req.url))
    login(page, live_server, "alice", PASSWORD)

    page.goto(live_server.url + reverse(url_name))

    # drf-spectacular builds the schema and the UI renders it on the page: slow on a busy runner.
    expect(page.locator(title_locator).first).to_contain_text("Inference Console API", timeout=45_000)
    page.wait_for_load_state("networkidle")
    screenshot(page, url_name)

    hosts = {urlsplit(url).hostname for url in requested if urlsplit(url).scheme in ("http", "https")}
    assert hosts, "the page made no requests at all"
    assert hosts <= LOOPBACK_HOSTS, f"requests left the loopback host: {sorted(hosts - LOOPBACK_HOSTS)}"
    browser_issues.assert_clean()


def test_missing_page_shows_the_console_404(console_page, live_server, alice, browser_issues):
    browser_issues.allow(r"status of 404")
    page = console_page
    login(page, live_server, "alice", PASSWORD)

    response = page.goto(live_server.url + "/no-such-page/")

    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_text("Reference:")).to_contain_text(response.headers["x-request-id"])


def test_repeated_failed_sign_ins_explain_the_lockout(
    console_page, live_server, alice, browser_issues, settings
):
    browser_issues.allow(r"status of 429")
    page = console_page
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.goto(live_server.url + reverse("login"))
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("still-not-the-password")
        page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in temporarily locked")
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    expect(page.get_by_text("paused for")).to_contain_text(f"{minutes} minutes")
    screenshot(page, "lockout")


# --- Generic pages -----------------------------------------------------------------------------
# No app view uses the generic templates yet, so these render them directly and serve the HTML
# from the live server's origin with the console's real Content-Security-Policy header: the
# page's stylesheet, htmx and console.js load exactly as they will in the product.


class _Row:
    def __init__(self, name, phase):
        self.name, self.phase = name, phase

    def __str__(self):
        return self.name


def _render(template_source, context, user):
    request = RequestFactory().get("/preview/", {"state": "active", "page": "2"})
    request.user = user
    return engines["django"].from_string(template_source).render(context, request)


def _serve(page, live_server, path, html):
    csp = page.request.get(live_server.url + reverse("login")).headers["content-security-policy"]
    page.route(
        live_server.url + path,
        lambda route: route.fulfill(
            status=200,
            body=html,
            headers={"content-type": "text/html; charset=utf-8", "content-security-policy": csp},
        ),
    )
    page.goto(live_server.url + path)


def test_generic_list_renders_table_badges_pagination_and_dismissible_messages(
    console_page, live_server, alice
):

    class StateFilterForm(forms.Form):
        state = forms.ChoiceField(
            choices=[("", "Any"), ("active", "Active"), ("stopped", "Stopped")], required=False
        )
        search = forms.CharField(required=False, label="Name contains")

    phases = ["Ready", "Deploying", "Pending", "Degraded", "Failed", "Stopped", "Unknown", None]
    rows = [_Row(f"endpoint-{i}", phase) for i, phase in enumerate(phases * 3)]
    page_obj = Paginator(rows, len(phases)).page(2)
    html = _render(
        """{% extends "generic/list.html" %}
        {% block table_head %}<th scope="col">Name</th><th scope="col">Status</th>{% endblock %}
        {% block table_row %}<td>{{ object.name }}</td><td>{% include "partials/status_badge.html" with phase=object.phase %}</td>{% endblock %}""",
        {
            "title": "Endpoints",
            "object_list": page_obj.object_list,
            "page_obj": page_obj,
            "is_paginated": True,
            "create_url": "/endpoints/new/",
            "create_label": "Deploy a model",
            "filter_form": StateFilterForm(data={"state": "active"}),
            "messages": [Message(messages.SUCCESS, "Endpoint fraud-scorer saved.")],
        },
        alice,
    )
    page = console_page
    _serve(page, live_server, "/preview/list/", html)

    expect(page.get_by_role("heading", level=1)).to_have_text("Endpoints")
    expect(page.get_by_role("link", name="Deploy a model")).to_be_visible()
    filters = page.get_by_role("search", name="Filter endpoints")
    expect(filters.get_by_label("State")).to_have_value("active")
    expect(filters.get_by_role("link", name="Clear")).to_have_attribute("href", "/preview/")
    expect(page.get_by_role("columnheader")).to_have_text(["Name", "Status"])
    expect(page.locator("tbody tr")).to_have_count(len(phases))
    expect(page.locator("tbody .badge")).to_have_text(phases[:-1] + ["Unknown"])
    # Colours come from the stylesheet: a Failed badge is not styled like a Ready one.
    ready_bg = page.locator(".badge-ready").first.evaluate("e => getComputedStyle(e).backgroundColor")
    failed_bg = page.locator(".badge-failed").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert ready_bg != failed_bg
    pagination = page.get_by_role("navigation", name="Pagination")
    expect(pagination).to_contain_text(f"Showing {len(phases) + 1}–{2 * len(phases)} of {len(rows)}")
    expect(pagination.get_by_text("Page 2 of 3")).to_have_attribute("aria-current", "page")
    # Page links keep the filters and change only the page.
    expect(pagination.get_by_role("link", name="Next")).to_have_attribute("href", "?state=active&page=3")
    screenshot(page, "generic-list")

    alert = page.get_by_role("status").filter(has_text="Endpoint fraud-scorer saved.")
    expect(alert).to_be_visible()
    alert.get_by_role("button", name="Dismiss this message").click()
    expect(alert).to_have_count(0)


def test_generic_detail_tabs_and_confirm_prompt_work(console_page, live_server, alice):
    html = _render(
        """{% extends "generic/detail.html" %}
        {% block actions %}<form method="post" action="/preview/delete/" data-confirm="Delete endpoint fraud-scorer?">{% csrf_token %}<button type="submit" class="button button-danger">Delete</button></form>{% endblock %}
        {% block detail_content %}
        <div data-tabs>
          <ul class="tabs" data-tab-list aria-label="Endpoint sections">
            <li><a href="#overview" data-tab>Overview</a></li>
            <li><a href="#revisions" data-tab>Revisions</a></li>
          </ul>
          <section id="overview" data-tab-panel><h2>Overview</h2><p>Serving version 3.</p></section>
          <section id="revisions" data-tab-panel><h2>Revisions</h2><p>Generation 7 applied.</p></section>
        </div>
        {% endblock %}""",
        {
            "title": "fraud-scorer",
            "attributes": [("Project", "risk"), ("Runtime", "kserve-sklearnserver"), ("URL", None)],
        },
        alice,
    )
    page = console_page
    posted = []
    page.route(
        live_server.url + "/preview/delete/", lambda route: (posted.append(1), route.fulfill(status=204))
    )
    _serve(page, live_server, "/preview/detail/", html)

    expect(page.locator("dl.attributes dt")).to_have_text(["Project", "Runtime", "URL"])
    expect(page.locator("dl.attributes dd").last).to_have_text("—")

    overview = page.get_by_role("tab", name="Overview")
    revisions = page.get_by_role("tab", name="Revisions")
    expect(overview).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tabpanel", name="Overview")).to_be_visible()
    expect(page.get_by_text("Generation 7 applied.")).to_be_hidden()
    revisions.click()
    expect(revisions).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("Generation 7 applied.")).to_be_visible()
    expect(page.get_by_text("Serving version 3.")).to_be_hidden()
    assert page.url.endswith("#revisions")
    page.keyboard.press("ArrowLeft")
    expect(overview).to_be_focused()
    expect(page.get_by_text("Serving version 3.")).to_be_visible()
    screenshot(page, "generic-detail")

    # Declining the prompt keeps the form from being posted.
    prompts = []

    def decline(dialog):
        prompts.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    page.get_by_role("button", name="Delete").click()
    assert prompts == ["Delete endpoint fraud-scorer?"]
    page.wait_for_timeout(200)
    assert posted == []


def test_generic_form_shows_errors_accessibly(console_page, live_server, alice):
    class EndpointPreviewForm(forms.Form):
        name = forms.CharField(
            max_length=45,
            help_text="Lowercase letters, digits and hyphens.",
            validators=[
                RegexValidator(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", "Use lowercase letters, digits and hyphens.")
            ],
        )
        mode = forms.ChoiceField(
            choices=[("knative", "Knative"), ("standard", "Standard")], widget=forms.RadioSelect
        )
        scale_to_zero = forms.BooleanField(required=False, help_text="Only in Knative mode.")
        description = forms.CharField(widget=forms.Textarea, required=False)

        def clean(self):
            raise forms.ValidationError("The project's GPU quota is exhausted.")

    form = EndpointPreviewForm(data={"name": "Fraud Scorer"})
    assert not form.is_valid()
    html = _render(
        '{% extends "generic/form.html" %}',
        {"title": "Deploy a model", "form": form, "submit_label": "Deploy", "cancel_url": "/"},
        alice,
    )
    page = console_page
    _serve(page, live_server, "/preview/form/", html)

    summary = page.get_by_role("alert").filter(has_text="There are")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("The project's GPU quota is exhausted.")
    expect(
        summary.get_by_role("link", name="Name: Use lowercase letters, digits and hyphens.")
    ).to_have_attribute("href", "#id_name")
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description(re.compile(r"Lowercase letters.*Use lowercase letters", re.S))
    expect(page.get_by_role("group", name="Mode")).to_have_accessible_description(
        re.compile("This field is required")
    )
    expect(page.get_by_role("radio", name="Knative")).to_be_visible()
    expect(page.get_by_role("checkbox", name="Scale to zero")).to_have_accessible_description(
        "Only in Knative mode."
    )
    expect(page.get_by_label("Description (optional)")).to_be_visible()
    expect(page.get_by_role("button", name="Deploy")).to_be_visible()
    screenshot(page, "generic-form")
