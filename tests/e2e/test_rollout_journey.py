"""Journeys 5 and 6 — automated canary rollouts, watched in the browser by a data scientist
(alice, Deployer on project "fraud" of the sandbox cluster, set up as docs/deploy.md asks):

- she starts an automated rollout of v2 from the endpoint's Rollout tab (a nonsense policy is
  refused first, with the field's message), the canary is healthy, and she watches it step
  10 → 50 → 100 % and promote itself: the timeline chart, the decisions with their gate values,
  and v2 as the endpoint's version;
- on a second endpoint the canary fails a quarter of its calls, and she watches the rollout roll
  itself back at its first step, the decision naming the error-rate gate and its threshold.

Celery runs eagerly in tests and no beat runs: where the periodic evaluation would run, the test
runs it (``evaluate_rollout``) after moving the step's start five minutes back and recording
deterministic traffic (seeded ``monitoring.simulate`` calls) for that window.

Screenshots: test-output/e2e/rollout-promotes/NN-<step>.png and test-output/e2e/rollout-rolls-back/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from console.access import grants
from console.portal.devstack import _configure_sandbox_kserve
from endpoints.models import Rollout
from endpoints.services.capabilities import cluster_discover
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.rollouts import rollout_apply
from monitoring import rollouts as gates
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.browser import login
from tests.monitoring.rollout_helpers import rollout_endpoint, send

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scorer(admin_user, alice, sandbox):
    """The endpoint serving v1, Ready on the sandbox, whose KServe keeps the console's
    bookkeeping annotations off the pods; alice is the project's Deployer."""
    _configure_sandbox_kserve(sandbox.url)
    endpoint = rollout_endpoint(admin_user, api_url=sandbox.url)
    cluster_discover(cluster=endpoint.project.cluster)
    grants.grant_create(actor=admin_user, role="deployer", target=endpoint.project, user=alice,
                        reason="Fraud model owner")
    sandbox.wait_ready("fraud", "scorer")
    endpoint_sync_status(endpoint_id=endpoint.pk)
    return endpoint


def _tab(live_server, endpoint) -> str:
    return live_server.url + reverse("monitoring:endpoint-rollout",
                                     kwargs={"project": endpoint.project.name, "name": endpoint.name})


def _plotted(page) -> int:
    return page.evaluate("""() => {
        const div = document.querySelector('[data-figure="timeline"]');
        return div && div.data ? div.data.filter(t => (t.x || []).length > 0).length : 0;
    }""")


def _start(page, steps, *, policy_steps: str) -> None:
    form = page.locator("[data-rollout-start]")
    form.get_by_label("Version to roll out").select_option(label="scorer v2")
    form.get_by_label("Traffic steps (%)").fill(policy_steps)
    form.get_by_label("Minimum time per step (minutes)").fill("1")
    form.get_by_label("Minimum canary requests per step").fill("40")
    steps.step("start form")
    form.get_by_role("button", name="Start rollout").click()


def _run_step(endpoint, *, behaviour: str, seed: int):
    """What the periodic evaluation does once the step's window holds enough traffic."""
    rollout = Rollout.objects.get(endpoint=endpoint, state="running")
    # As if the step had started five minutes ago and served its share of the traffic since.
    started = timezone.now() - timedelta(minutes=5)
    Rollout.objects.filter(pk=rollout.pk).update(step_started_at=started)
    start = started.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)
    send(endpoint, start=start, minutes=3, calls=int(40 * 100 / rollout.current_percent * 1.5) + 20,
         behaviour=behaviour, seed=seed)
    decision = gates.evaluate_rollout(rollout_id=rollout.pk)
    assert decision is not None, Rollout.objects.get(pk=rollout.pk).last_evaluation
    rollout_apply(decision_id=decision.pk)  # the worker's task (eager here: already run, so a no-op)
    return decision


def test_data_scientist_starts_an_automated_rollout_and_watches_it_promote(console_page, journey, live_server,
                                                                            alice, scorer, sandbox, browser_issues):
    page = console_page
    # The refused policy below answers 400 (the form with its errors), which the browser logs.
    browser_issues.allow(r"status of 400 .*/rollout/start/")
    steps = journey("rollout-promotes")
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(live_server.url + reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer"}))
    page.get_by_role("link", name="Rollout", exact=True).click()
    expect(page.get_by_text("No automated rollout on this endpoint yet.")).to_be_visible()
    steps.step("rollout tab")

    # Nonsense is refused with the field's message, and nothing starts.
    _start(page, steps, policy_steps="50, 20")
    expect(page.locator("#id_steps_error")).to_contain_text("Steps must increase")
    assert not Rollout.objects.exists()
    steps.step("decreasing steps refused")

    _start(page, steps, policy_steps="10, 50, 100")
    expect(page.get_by_text("Rollout started: scorer v2 takes 10% of the traffic.")).to_be_visible()
    expect(page.locator("[data-rollout-state]")).to_have_attribute("data-rollout-state", "running")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    steps.step("rollout running at 10 percent")

    for seed, percent in ((1, 50), (2, 100)):
        assert _run_step(scorer, behaviour="healthy", seed=seed).kind == "advance"
        page.reload()
        expect(page.locator("[data-rollout-decisions] tr[data-decision='advance']").first).to_contain_text(
            f"{percent}%")
    sandbox.wait_for(lambda: (sandbox.isvc("fraud", "scorer") or {}).get("spec", {}).get("predictor", {})
                     .get("canaryTrafficPercent") == 100, message="the 100 % step on the cluster")
    steps.step("all traffic on the canary")
    assert _run_step(scorer, behaviour="healthy", seed=3).kind == "promote"

    page.reload()
    expect(page.locator("[data-rollout-state]")).to_have_attribute("data-rollout-state", "promoted")
    expect(page.locator("[data-rollout-decisions] tr[data-decision='promote']")).to_contain_text("rollout controller")
    expect(page.locator("[data-rollout-decisions]")).to_contain_text("p99 latency ratio")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    page.wait_for_function("() => document.querySelector('[data-figure=\"timeline\"]').data !== undefined")
    assert _plotted(page) >= 3  # the traffic line, the decisions, the gate values
    steps.step("promoted timeline")
    expect(page.locator(".page-description")).to_contain_text("scorer v2")


def test_data_scientist_watches_a_failing_canary_roll_itself_back(console_page, journey, live_server, alice, scorer):
    page = console_page
    steps = journey("rollout-rolls-back")
    login(page, live_server, "alice", DEFAULT_PASSWORD)
    page.goto(_tab(live_server, scorer))
    _start(page, steps, policy_steps="10, 25, 50, 100")
    expect(page.locator("[data-rollout-state]")).to_have_attribute("data-rollout-state", "running")

    decision = _run_step(scorer, behaviour="error-prone", seed=4)
    assert decision.kind == "rollback" and decision.step_index == 0
    page.reload()
    expect(page.locator("[data-rollout-state]")).to_have_attribute("data-rollout-state", "rolled_back")
    row = page.locator("[data-rollout-decisions] tr[data-decision='rollback']")
    expect(row).to_contain_text("Error rate increase (pp)")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("0%")
    page.wait_for_function("() => document.querySelector('[data-figure=\"timeline\"]').data !== undefined")
    assert _plotted(page) >= 3
    steps.step("rolled back timeline")
    # The canary stays for inspection at 0 %: a new rollout can be started once it is fixed.
    expect(page.get_by_role("heading", name="Start an automated rollout")).to_be_visible()
    scorer.refresh_from_db()
    assert scorer.canary_traffic_percent == 0 and scorer.canary_version.version == 2
