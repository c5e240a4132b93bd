"""In a real browser: "How to call it" shows the endpoint's URL as soon as the status poll sees
the endpoint Ready, without a reload."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from endpoints.models import EndpointStatus
from tests.endpoints.endpoint_factories import EndpointFactory, deploy_setup, grant
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_how_to_call_shows_the_url_when_the_endpoint_becomes_ready(console_page, live_server, alice):
    setup = deploy_setup(actor=alice)
    grant(alice, setup.project, "view", "deploy")
    endpoint = EndpointFactory(project=setup.project, name="v1-scorer", model_version=setup.v1,
                               status={"phase": "Deploying"})
    page = console_page
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:endpoint-detail",
                                        kwargs={"project": "fraud", "name": "v1-scorer"}))
    panel = page.locator("#how-to-call")
    expect(panel).to_contain_text("The URL appears here once the endpoint is Ready")

    EndpointStatus.objects.filter(endpoint=endpoint).update(phase="Ready", ready=True,
                                                            url="http://v1-scorer.fraud.example.com")

    expect(panel).to_contain_text("http://v1-scorer.fraud.example.com/v1/models/v1-scorer:predict", timeout=10_000)
    expect(panel).not_to_contain_text("appears here once the endpoint is Ready")
    expect(page.locator("#how-to-call")).to_have_count(1)
