"""The console's main pages at laptop (1280 px) and tablet (768 and 600 px) widths: nothing widens the
page beyond the screen (wide tables scroll inside their frame), every form control has a
label, and a form can be filled and sent with the keyboard alone.

Screenshots: test-output/e2e/layout/<width>-<page>.png.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit import sealing
from console.access import grants
from endpoints.services.endpoints import endpoint_create
from endpoints.services.platform import sync_builtin_runtimes
from endpoints.services.projects import project_create
from endpoints.services.registry import model_register, model_version_create
from tests.e2e.conftest import E2E_OUTPUT
from tests.endpoints.endpoint_factories import ClusterFactory
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1280, 768, 600)

# Controls without a label (or an aria-label / aria-labelledby) and the right edge of the
# widest element that is not inside a scrolling frame.
_CHECK = """() => {
  const unlabeled = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || el.closest('[hidden]') || el.offsetParent === null) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!named) unlabeled.push(el.name || el.id || el.outerHTML.slice(0, 80));
  }
  const frames = [...document.querySelectorAll('.table-wrap')].filter(f => f.scrollWidth > f.clientWidth).length;
  return {scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
          unlabeled, scrollingTables: frames};
}"""


@pytest.fixture
def workspace(admin_user, alice, fake_apiserver):
    sync_builtin_runtimes()
    cluster = ClusterFactory(name="sandbox", api_url=fake_apiserver.url)
    project = project_create(actor=admin_user, name="fraud-chargebacks", cluster=cluster)
    grants.grant_create(actor=admin_user, role="deployer", target=project, user=alice, reason="layout check")
    model = model_register(actor=alice, project=project, name="card-fraud-gradient-boosted-trees",
                           task="classification")
    version = model_version_create(actor=alice, model=model, storage_uri="s3://models/card-fraud/1",
                                   model_format="sklearn")
    for index in range(3):
        endpoint_create(actor=alice, project=project, name=f"card-fraud-scorer-{index}",
                        model_version=version, max_replicas=2)
    sealing.seal_pending()
    return project


def _pages(project) -> list[tuple[str, str]]:
    endpoint = f"{project.name}/card-fraud-scorer-0"
    return [
        ("home", reverse("home")),
        ("endpoints", reverse("endpoints:endpoint-list")),
        ("endpoint", f"/endpoints/{endpoint}/"),
        ("wizard", reverse("endpoints:endpoint-create")),
        ("models", reverse("endpoints:model-list")),
        ("audit", reverse("audit:event-list")),
        ("access", reverse("access:access-overview")),
        ("dashboards", reverse("monitoring:overview")),
        ("tokens", reverse("access:token-list")),
    ]


@pytest.mark.slow
def test_main_pages_fit_laptop_and_tablet_widths_and_label_every_control(
        console_page, live_server, admin_user, workspace):
    page = console_page
    login(page, live_server, admin_user.username, DEFAULT_PASSWORD)
    folder = E2E_OUTPUT / "layout"
    folder.mkdir(parents=True, exist_ok=True)
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in _pages(workspace):
            response = page.goto(live_server.url + path)
            assert response is not None and response.status == 200, f"{path}: {response and response.status}"
            page.wait_for_load_state("load")
            found = page.evaluate(_CHECK)
            if found["scrollWidth"] > found["clientWidth"]:
                problems.append(f"{width}px {path}: page is {found['scrollWidth']} px wide")
            if found["unlabeled"]:
                problems.append(f"{width}px {path}: controls without a label: {found['unlabeled']}")
            page.screenshot(path=str(folder / f"{width}-{name}.png"), full_page=True, timeout=30_000)
            if width == 600 and name == "endpoints":
                # The case that matters: a table wider than the tablet, scrolling in its frame.
                assert found["scrollingTables"] == 1, found
    assert not problems, "\n".join(problems)


def test_a_form_is_filled_and_sent_with_the_keyboard_alone(console_page, live_server, alice, workspace):
    page = console_page
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:model-create"))
    page.wait_for_load_state("load")
    # Tab from the top of the page to the first field of the form, then type and submit.
    page.get_by_role("heading", level=1).focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "project":
            break
    else:
        pytest.fail("the Project field cannot be reached with Tab")
    expect(page.locator(":focus")).to_have_attribute("name", "project")
    page.keyboard.press("ArrowDown")  # the only project
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "name"
    page.keyboard.type("keyboard-model")
    # Focus is visible on the focused control (an outline or a box shadow).
    ring = page.evaluate("""() => { const s = getComputedStyle(document.activeElement);
        return s.outlineStyle !== 'none' && s.outlineWidth !== '0px' || s.boxShadow !== 'none'; }""")
    assert ring, "the focused field shows no focus ring"
    page.keyboard.press("Enter")
    expect(page.get_by_text(re.compile("Model keyboard-model registered"))).to_be_visible()
