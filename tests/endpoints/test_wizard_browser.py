"""The wizard in a real browser: choosing a project narrows the version pickers to its
versions, and choosing a hardware profile prefills and bounds the Hardware section."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from endpoints.services.platform import hardware_profile_create
from tests.endpoints.endpoint_factories import (
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
    deploy_setup,
    grant,
)
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]



def _htmx_processed(page, selector: str) -> None:
    """Wait until htmx has taken up the element a swap just put in (it does so as the swap
    settles): a change before that sends no request, which a person could never be quick enough
    to do, but a browser driven by a test can."""
    page.wait_for_function(
        "selector => { const el = document.querySelector(selector); return !!(el && el['htmx-internal-data']); }",
        arg=selector)

def test_project_narrows_the_versions_and_the_profile_prefills_the_hardware(console_page, live_server, alice):
    setup = deploy_setup(actor=alice)
    grant(alice, setup.project, "view", "deploy")
    rival = ProjectFactory(name="rival", cluster=setup.cluster)
    grant(alice, rival, "view", "deploy")
    ModelVersionFactory(model=RegisteredModelFactory(project=rival, name="rival-model"))
    cpu = hardware_profile_create(actor=None, name="cpu-small", display_name="CPU small", default_cpu="500m",
                                  default_memory="1Gi", max_cpu="2", max_memory="4Gi", defaults_as_limits=True)
    page = console_page
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:endpoint-create"))
    page.wait_for_load_state("load")
    versions = page.locator("#id_model_version option")
    expect(versions.filter(has_text="rival-model")).to_have_count(1)  # no project chosen yet

    page.get_by_label("Project").select_option(label=str(setup.project))
    expect(versions.filter(has_text="rival-model")).to_have_count(0)
    expect(versions.filter(has_text="fraud / scorer v1")).to_have_count(1)

    page.locator("#id_hardware_profile").select_option(str(setup.profile.pk))
    count = page.locator("#id_accelerator_count")
    expect(count).to_have_value("1")
    expect(count).to_have_attribute("min", "1")
    expect(count).to_have_attribute("max", "4")
    expect(page.locator("#id_cpu_request")).to_have_value("1")
    expect(page.locator("#id_memory_request")).to_have_value("2Gi")

    # The swapped section keeps working: another profile, then none.
    _htmx_processed(page, "#id_hardware_profile")
    page.locator("#id_hardware_profile").select_option(str(cpu.pk))
    expect(page.locator("#id_cpu_request")).to_have_value("500m")
    expect(page.locator("#id_cpu_limit")).to_have_value("500m")
    expect(count).to_have_value("0")
    _htmx_processed(page, "#id_hardware_profile")
    page.locator("#id_hardware_profile").select_option("")
    expect(page.locator("#id_cpu_request")).to_have_value("")
    expect(page.get_by_label("Name", exact=True)).to_be_visible()
