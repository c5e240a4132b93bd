"""A project Owner tidies up in a real browser: opens the project page as a member, tries to
delete a version an endpoint serves and reads why not, archives it instead, and deletes a
version nothing uses."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from console.access import grants
from endpoints.models import ModelVersion
from tests.endpoints.endpoint_factories import (
    EndpointFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
)
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.fixtures.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def project():
    project = ProjectFactory(name="fraud")
    model = RegisteredModelFactory(project=project, name="card-fraud")
    served = ModelVersionFactory(model=model, version=1)
    ModelVersionFactory(model=model, version=2)
    EndpointFactory(project=project, name="card-scorer", model_version=served, status={"phase": "Ready"})
    owner = UserFactory(username="olivia")
    grants.grant_create(actor=None, role="owner", target=project, user=owner, reason="runs the fraud models")
    return project


def test_owner_reads_why_a_serving_version_stays_archives_it_and_deletes_an_unused_one(
        console_page, live_server, project):
    page = console_page
    login(page, live_server, "olivia", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:project-detail", kwargs={"name": "fraud"}))
    expect(page.get_by_role("heading", name="Project fraud", level=1)).to_be_visible()
    expect(page.get_by_role("row", name="card-scorer")).to_be_visible()
    expect(page.get_by_role("row", name="olivia")).to_be_visible()
    screenshot(page, "lifecycle-01-project-page")
    page.get_by_role("link", name="card-fraud").click()

    page.get_by_role("link", name="Delete v1").click()
    expect(page.get_by_role("heading", name="It cannot be deleted now")).to_be_visible()
    expect(page.get_by_text("served by endpoint fraud/card-scorer")).to_be_visible()
    expect(page.get_by_role("button", name="Delete version")).to_have_count(0)
    screenshot(page, "lifecycle-02-delete-refused")
    assert ModelVersion.objects.filter(version=1).exists()

    page.get_by_role("link", name="Back").click()
    page.get_by_role("button", name="Archive v1").click()
    expect(page.get_by_text("Version 1 of card-fraud archived")).to_be_visible()
    expect(page.get_by_role("button", name="Unarchive v1")).to_be_visible()

    page.get_by_role("link", name="Delete v2").click()
    page.get_by_role("button", name="Delete version").click()
    expect(page.get_by_text("Version card-fraud v2 deleted.")).to_be_visible()
    screenshot(page, "lifecycle-03-deleted")
    assert not ModelVersion.objects.filter(version=2).exists()
