"""Automated canary rollouts decided by their gates, with deterministic traffic (seeded
``monitoring.simulate`` calls recorded into the rollups): a healthy canary promotes through
every step; a slower, more error-prone or drifting one rolls back at the first step whose
window shows it, the audit event naming the gate, its value and its threshold; too little
traffic waits, then times out into the configured action."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from endpoints.models import Notification, NotificationChannel, Rollout, RolloutDecision
from endpoints.services import rollouts
from monitoring import rollouts as gates
from tests.monitoring.rollout_helpers import rollout_endpoint, send

pytestmark = pytest.mark.django_db

POLICY = {"min_step_requests": 60, "min_step_minutes": 5, "max_wait_minutes": 30}


@pytest.fixture
def endpoint(alice):
    return rollout_endpoint(alice)


def _start(alice, endpoint, **policy):
    endpoint.refresh_from_db()
    version = endpoint.model_version.model.versions.exclude(pk=endpoint.model_version_id).get()
    return rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=version,
                                  policy={**POLICY, **policy})


def _step(rollout, endpoint, *, behaviour="healthy", calls=None, seed=1, minutes=5.5, wait=7):
    """Traffic over the current step (enough for the canary's share to reach the minimum), then
    one evaluation ``wait`` minutes after the step started, and the decision applied."""
    rollout.refresh_from_db()
    start = rollout.step_started_at.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)
    percent = rollout.current_percent
    if calls is None:
        calls = int(POLICY["min_step_requests"] * 100 / percent * 1.5) + 20
    send(endpoint, start=start, minutes=minutes, calls=calls, behaviour=behaviour, seed=seed)
    now = rollout.step_started_at + timedelta(minutes=wait)
    decision = gates.evaluate_rollout(rollout_id=rollout.pk, now=now)
    if decision is not None and decision.applied_at is None:
        decision = rollouts.rollout_apply(decision_id=decision.pk, now=now + timedelta(seconds=5))
    rollout.refresh_from_db()
    return decision


def _gate(decision, key):
    return next(g for g in decision.gates if g["gate"] == key)


def test_a_healthy_canary_promotes_itself_through_every_step(alice, endpoint):
    NotificationChannel.objects.create(name="ops", kind="email", target="ops@example.com", all_projects=True)
    rollout = _start(alice, endpoint)
    endpoint.refresh_from_db()
    assert endpoint.canary_traffic_percent == 10
    seen = []
    for seed in range(1, 5):
        decision = _step(rollout, endpoint, seed=seed)
        seen.append((decision.kind, decision.traffic_percent))
        assert all(g["passed"] for g in decision.gates), [(g["gate"], g["value"], g["passed"], g["note"]) for g in decision.gates]
    assert seen == [("advance", 25), ("advance", 50), ("advance", 100), ("promote", 100)]
    endpoint.refresh_from_db()
    assert rollout.state == Rollout.State.PROMOTED
    assert endpoint.model_version_id == rollout.canary_version_id and endpoint.canary_version_id is None
    # Each step was a generation of its own, audited with the gates that decided it.
    generations = list(rollout.decisions.exclude(generation=None).values_list("generation", flat=True))
    assert generations == sorted(set(generations)) and len(generations) == 5
    steps = AuditEvent.objects.filter(action="rollout.step").order_by("pk")
    assert [e.details["traffic_percent"] for e in steps] == [25, 50, 100]
    assert all({g["gate"] for g in e.details["gates"]} >= {"error_rate", "p99_ratio", "prediction_psi"} for e in steps)
    update = AuditEvent.objects.filter(action="endpoint.update", details__rollout_decision="advance").first()
    assert update is not None and update.details["gates"]
    assert Notification.objects.filter(event="rollout", state="promoted").count() == 1


@pytest.mark.parametrize(("behaviour", "gate"), [
    ("slower", "p99_ratio"),
    ("error-prone", "error_rate"),
    ("drifting", "prediction_psi"),
])
def test_a_regression_rolls_back_at_the_first_step_whose_window_shows_it(alice, endpoint, behaviour, gate):
    rollout = _start(alice, endpoint)
    assert _step(rollout, endpoint, seed=11).kind == "advance"  # 10 %: healthy
    decision = _step(rollout, endpoint, behaviour=behaviour, seed=12)  # 25 %: the regression shows
    assert decision.kind == "rollback" and decision.step_index == 1
    failed = _gate(decision, gate)
    assert failed["passed"] is False and failed["value"] > failed["threshold"]
    endpoint.refresh_from_db()
    # Rolled back to 0 % with the canary kept for inspection (the default failure action).
    assert endpoint.canary_traffic_percent == 0 and endpoint.canary_version_id == rollout.canary_version_id
    assert rollout.state == Rollout.State.ROLLED_BACK
    event = AuditEvent.objects.get(action="rollout.rollback")
    assert event.details["gate"] == gate
    assert event.details["value"] == failed["value"] and event.details["threshold"] == failed["threshold"]
    assert Notification.objects.filter(event="rollout", state="rolled_back").exists()


def test_remove_on_failure_takes_the_canary_away(alice, endpoint):
    rollout = _start(alice, endpoint, on_failure="remove")
    decision = _step(rollout, endpoint, behaviour="error-prone", seed=21)
    assert decision.kind == "remove" and decision.step_index == 0
    endpoint.refresh_from_db()
    assert endpoint.canary_version_id is None and endpoint.canary_traffic_percent is None


def test_too_little_traffic_waits_and_says_how_much(alice, endpoint, admin_user):
    rollout = _start(alice, endpoint)
    decision = _step(rollout, endpoint, calls=100, seed=31)  # ~10 canary requests of 60
    assert decision is None
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.RUNNING and rollout.step_index == 0
    evaluation = rollout.last_evaluation
    assert evaluation["outcome"] == "wait"
    assert evaluation["message"].startswith("waiting: ") and " of 60 requests" in evaluation["message"]
    requests = next(g for g in evaluation["gates"] if g["gate"] == "requests")
    assert requests["passed"] is False and 0 < requests["value"] < 60
    # The tab calls a minimum not yet reached "waiting", never "failed".
    client = Client()
    client.force_login(admin_user)
    page = client.get(reverse("monitoring:endpoint-rollout", kwargs={"project": endpoint.project.name,
                                                                      "name": endpoint.name}))
    assert page.status_code == 200, page.status_code
    gates_table = page.content.decode().split("Gates over the current step", 1)[1].split("</table>", 1)[0]
    requests_row = gates_table.split("<td>Canary requests</td>", 1)[1].split("</tr>", 1)[0]
    assert "waiting" in requests_row and "failed" not in requests_row


def test_waiting_past_the_maximum_wait_takes_the_failure_action(alice, endpoint):
    rollout = _start(alice, endpoint)
    _step(rollout, endpoint, calls=100, seed=41)
    decision = gates.evaluate_rollout(rollout_id=rollout.pk, now=rollout.step_started_at + timedelta(minutes=31))
    assert decision.kind == "rollback" and "timed out after 30 min" in decision.reason
    rollouts.rollout_apply(decision_id=decision.pk)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.ROLLED_BACK


def test_waiting_past_the_maximum_wait_can_pause_instead(alice, endpoint):
    rollout = _start(alice, endpoint, on_timeout="pause")
    assert gates.evaluate_rollout(rollout_id=rollout.pk, now=rollout.step_started_at + timedelta(minutes=31)) is None
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.PAUSED and "timed out" in rollout.paused_reason
    endpoint.refresh_from_db()
    assert endpoint.canary_traffic_percent == 10  # traffic untouched


def test_a_pending_decision_is_applied_once_never_decided_again(alice, endpoint):
    rollout = _start(alice, endpoint)
    rollout.refresh_from_db()
    start = rollout.step_started_at.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)
    send(endpoint, start=start, minutes=5.5, calls=1000, seed=51)
    now = rollout.step_started_at + timedelta(minutes=7)
    first = gates.evaluate_rollout(rollout_id=rollout.pk, now=now)  # decided; its worker "dies" here
    again = gates.evaluate_rollout(rollout_id=rollout.pk, now=now + timedelta(minutes=1))
    assert again.pk == first.pk and RolloutDecision.objects.filter(kind="advance").count() == 1
    generation = endpoint.__class__.objects.get(pk=endpoint.pk).generation
    rollouts.rollout_apply(decision_id=first.pk)
    rollouts.rollout_apply(decision_id=first.pk)  # delivered twice
    endpoint.refresh_from_db()
    rollout.refresh_from_db()
    assert endpoint.generation == generation + 1 and rollout.step_index == 1
    assert endpoint.canary_traffic_percent == 25


def test_a_decision_pending_when_a_person_changes_the_endpoint_is_not_applied(alice, endpoint):
    from endpoints.services.endpoints import endpoint_update

    rollout = _start(alice, endpoint)
    rollout.refresh_from_db()
    start = rollout.step_started_at.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)
    send(endpoint, start=start, minutes=5.5, calls=1000, seed=61)
    decision = gates.evaluate_rollout(rollout_id=rollout.pk, now=rollout.step_started_at + timedelta(minutes=7))
    assert decision.kind == "advance" and decision.applied_at is None
    endpoint_update(actor=alice, endpoint=endpoint, max_replicas=2)  # pauses the rollout
    rollouts.rollout_apply(decision_id=decision.pk)
    endpoint.refresh_from_db()
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.PAUSED and rollout.step_index == 0
    assert endpoint.canary_traffic_percent == 10
    decision.refresh_from_db()
    assert decision.applied_at is not None and "not applied" in decision.reason


def test_simulated_canaries_can_be_slower_error_prone_or_drifting():
    import random

    from monitoring import simulate
    from tests.monitoring.helpers import FEATURES, reference_profile

    profile, signature = reference_profile(), [{"name": n, "type": "numeric"} for n in FEATURES]
    base = simulate.TrafficProfile(name="s", namespace="n", protocol="v1", slower_canary=1.0, error_rate=0.0,
                                   latency_sigma=0.01, versions=[("m:1", 0.0, profile, signature),
                                                                 ("m:2", 100.0, profile, signature)])
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def calls(traffic):
        rng = random.Random(1)
        return [simulate.make_call(traffic, at=at, rng=rng) for _ in range(200)]

    healthy = calls(base)
    assert all(c.response_time is not None for c in healthy)
    failing = calls(replace(base, canary_error_rate=0.5))
    assert 60 < sum(c.response_time is None for c in failing) < 140
    slower = calls(replace(base, slower_canary=3.0))
    assert min(c.response_time - at for c in slower) > 2 * max(c.response_time - at for c in healthy)
    drifting = calls(replace(base, canary_drift_shift=3.0))
    mean = lambda cs: sum(json.loads(c.events[0][1])["instances"][0][0] for c in cs) / len(cs)  # noqa: E731
    assert mean(drifting) > mean(healthy) + 1.5, FEATURES[0]
