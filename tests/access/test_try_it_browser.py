"""In a real browser: "Try it" on the endpoint page sends the prefilled request through a real
Envoy that asks the console's ext_authz; a Caller sees the prediction, status and latency, a
Viewer sees the gateway's 403 with the console's reason."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from console.access import grants
from tests.access.test_try_it import scorer  # noqa: F401  (fixture)
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open_try_it(page, live_server, username: str):
    login(page, live_server, username, DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer"}))
    panel = page.locator("#try-it")
    expect(panel.get_by_role("heading", name="Try it")).to_be_visible()
    return panel


def test_a_caller_sends_the_prefilled_request_and_sees_the_prediction(console_page, live_server, alice, scorer):  # noqa: F811
    grants.grant_create(actor=None, role="caller", target=scorer.project, user=alice, reason="test")
    panel = _open_try_it(console_page, live_server, "alice")
    editor = panel.get_by_label("Request body for POST /v1/models/scorer:predict")
    expect(editor).to_contain_text('"instances"')
    editor.fill('{"instances": [[1.5, 2.5], [3, 4]]}')
    panel.get_by_role("button", name="Send").click()
    expect(panel.get_by_test_id("try-it-status")).to_contain_text("200")
    expect(panel.get_by_test_id("try-it-body")).to_contain_text('"predictions"')
    expect(panel.get_by_test_id("try-it-body")).to_contain_text("4.0")
    expect(panel.get_by_test_id("try-it-latency")).to_contain_text("ms")


def test_a_viewer_is_refused_by_the_gateway_with_the_consoles_reason(console_page, live_server, bob, scorer):  # noqa: F811
    grants.grant_create(actor=None, role="viewer", target=scorer.project, user=bob, reason="test")
    panel = _open_try_it(console_page, live_server, "bob")
    panel.get_by_role("button", name="Send").click()
    expect(panel.get_by_test_id("try-it-status")).to_contain_text("403")
    expect(panel.get_by_test_id("try-it-reason")).to_contain_text("no live grant gives 'infer'")
    expect(panel.get_by_test_id("try-it-body")).to_contain_text("Forbidden")
