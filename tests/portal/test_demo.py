"""The demo of ``make run``: once the sandbox has run, the endpoints show the states the demo
promises (Ready, a 20 % canary, scaled to zero, Failed with its reason), access includes a
grant about to expire, the trail is sealed and verified, and seeding again changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, AuditSeal
from console.access.models import Grant
from console.portal import demo
from console.portal.devstack import _configure_sandbox_kserve
from endpoints.models import Endpoint, EndpointStatus, Revision
from endpoints.sandbox.controller import SandboxSettings
from endpoints.sandbox.run import start_sandbox
from endpoints.services.endpoints import endpoint_promote_canary
from endpoints.services.observation import endpoint_sync_status
from endpoints.services.reconciler import reconcile_all
from tests.fixtures.kube import Sandbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_sandbox(monkeypatch):
    server, controller = start_sandbox(settings=SandboxSettings())
    monkeypatch.setenv("SANDBOX_URL", server.url)
    monkeypatch.delenv("SANDBOX_TOKEN_FILE", raising=False)
    _configure_sandbox_kserve(server.url)  # as make run does before seeding
    try:
        yield Sandbox(server, controller)
    finally:
        controller.stop()
        server.stop()


def _run_worker(sandbox: Sandbox) -> dict[str, EndpointStatus]:
    """What the Celery worker does after the seed: a reconcile pass (applies what is missing or
    not applied yet), then each endpoint's status once the simulated controller has settled."""
    endpoints = list(Endpoint.objects.select_related("project"))
    reconcile_all()

    def settled():
        phases = {e.name: endpoint_sync_status(endpoint_id=e.pk) for e in endpoints}
        iris_traffic = EndpointStatus.objects.get(endpoint__name="iris").traffic
        done = all(p in ("Ready", "Failed") for p in phases.values()) and len(iris_traffic) == 2
        return phases if done else None

    sandbox.wait_for(settled, timeout=15, message="the demo endpoints to settle")
    return {s.endpoint.name: s for s in EndpointStatus.objects.select_related("endpoint")}


@pytest.fixture
def seeded(demo_sandbox, alice, bob):
    demo.seed()
    return demo_sandbox


def test_it_seeds_endpoints_in_ready_canary_scaled_to_zero_and_failed_states(seeded):
    statuses = _run_worker(seeded)
    assert {name: s.phase for name, s in statuses.items()} == {
        "iris": "Ready", "iris-batch": "Ready", "transaction-amount": "Ready",
        "transaction-amount-next": "Failed", "assistant": "Ready", "iris-rollout": "Ready", "iris-rollout-bad": "Ready",
    }
    iris = Endpoint.objects.get(name="iris")
    assert iris.canary_version.version == 2 and iris.canary_traffic_percent == 20
    assert iris.generation == 2
    assert Revision.objects.get(endpoint=iris, generation=2).change_summary == "canary: 20% to v2"
    split = sorted(row["percent"] for row in statuses["iris"].traffic)
    assert split == [20, 80], "the canary is a real Knative split between two revisions"
    assert Endpoint.objects.get(name="iris-batch").scaled_to_zero
    assert not iris.scaled_to_zero
    failed = statuses["transaction-amount-next"]
    assert failed.model_status["lastFailureInfo"]["reason"] == "ModelLoadFailed"
    assert any("s3://missing-bucket/transaction-amount/v2" in line for line in failed.explanation)


def test_failed_endpoint_page_says_why_in_plain_words_and_batch_says_scaled_to_zero(seeded, client, admin_user):
    _run_worker(seeded)
    client.force_login(admin_user)
    page = client.get(reverse("endpoints:endpoint-detail",
                              kwargs={"project": "fraud-detection", "name": "transaction-amount-next"}))
    body = page.content.decode()
    assert "Why it is not ready" in body
    assert "failed to download s3://missing-bucket/transaction-amount/v2" in body
    assert "ModelLoadFailed" in body
    listing = client.get(reverse("endpoints:endpoint-list")).content.decode()
    assert listing.count("Scaled to zero") == 1
    batch = client.get(reverse("endpoints:endpoint-detail",
                               kwargs={"project": "fraud-detection", "name": "iris-batch"})).content.decode()
    assert "Scaled to zero" in batch and "The first request starts one" in batch


def test_it_registers_a_regressor_with_reference_data(seeded):
    from endpoints.models import RegisteredModel

    model = RegisteredModel.objects.get(name="transaction-amount")
    assert model.task == "regression"
    v1, v2 = model.versions.order_by("version")
    assert v1.reference_rows == 400 and v1.prediction_column == "predicted_amount"
    assert {f["name"] for f in v1.input_signature} == set(demo.AMOUNT_FEATURES)
    assert v2.storage_uri.startswith("s3://missing-bucket/")


def test_bob_holds_a_grant_that_expires_in_three_days(seeded, bob):
    grant = Grant.objects.get(user=bob, role="caller", endpoint__name="iris")
    assert timezone.now() + timedelta(days=2) < grant.expires_at <= timezone.now() + timedelta(days=3)


def test_the_trail_is_sealed_and_verified_after_seeding(seeded):
    assert AuditSeal.objects.exists()
    newest_sealed = max(AuditSeal.objects.values_list("last_event_id", flat=True))
    assert not AuditEvent.objects.filter(id__gt=newest_sealed).exists()
    verification = AuditEvent.objects.get(action="audit.verify")
    assert verification.details["ok"] is True and verification.actor_name == "seed_demo"


def test_seeding_again_changes_nothing_and_records_nothing(seeded):
    counts = (AuditEvent.objects.count(), AuditSeal.objects.count(), Grant.objects.count(),
              Endpoint.objects.count(), Revision.objects.count())
    demo.seed()
    assert (AuditEvent.objects.count(), AuditSeal.objects.count(), Grant.objects.count(),
            Endpoint.objects.count(), Revision.objects.count()) == counts


def test_canary_is_not_started_again_after_someone_promoted_it(seeded, alice):
    iris = Endpoint.objects.get(name="iris")
    endpoint_promote_canary(actor=alice, endpoint=iris)
    events = AuditEvent.objects.count()
    demo.seed()
    iris.refresh_from_db()
    assert iris.canary_version is None and iris.model_version.version == 2
    assert AuditEvent.objects.count() == events


def test_a_slow_rollout_leaves_the_canary_to_the_next_run(monkeypatch, alice, bob):
    server, controller = start_sandbox(settings=SandboxSettings(ready_seconds=1.0))
    monkeypatch.setenv("SANDBOX_URL", server.url)
    monkeypatch.setattr(demo, "ROLLOUT_WAIT_SECONDS", 0.2)
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

    try:
        demo.seed(stdout=Out())
        iris = Endpoint.objects.get(name="iris")
        assert iris.generation == 1 and iris.canary_version is None
        assert any("was not Ready within" in line and "next seed_demo run" in line for line in lines)
        monkeypatch.setattr(demo, "ROLLOUT_WAIT_SECONDS", 10.0)
        demo.seed(stdout=Out())
        iris.refresh_from_db()
        assert iris.generation == 2 and iris.canary_traffic_percent == 20
    finally:
        controller.stop()
        server.stop()


def test_after_a_restart_on_an_empty_sandbox_the_demo_comes_back_with_its_canary(seeded):
    from urllib.parse import urlparse

    _run_worker(seeded)
    port = urlparse(seeded.url).port
    seeded.controller.stop()
    seeded.server.stop()
    server, controller = start_sandbox(port=port, settings=SandboxSettings())  # make run again: empty cluster
    try:
        console_events = AuditEvent.objects.exclude(action="endpoint.apply").count()
        demo.seed()
        assert AuditEvent.objects.exclude(action="endpoint.apply").count() == console_events
        statuses = _run_worker(Sandbox(server, controller))
        assert statuses["iris"].phase == "Ready" and statuses["transaction-amount-next"].phase == "Failed"
        assert sorted(row["percent"] for row in statuses["iris"].traffic) == [20, 80]
        assert Endpoint.objects.get(name="iris").generation == 2
    finally:
        controller.stop()
        server.stop()


def test_the_demo_rollouts_promote_one_canary_and_roll_the_other_back(seeded):
    """What make run's rollout traffic does to the two demo rollouts (a healthy canary, one three
    times slower), with the clock of each evaluation moved past the step."""
    import random

    from endpoints.models import Rollout
    from endpoints.services.rollouts import rollout_apply
    from monitoring import rollouts as gates
    from monitoring import simulate
    from monitoring.services import inference_records_ingest
    from tests.monitoring.rollout_helpers import pair_of

    _run_worker(seeded)
    good = Rollout.objects.get(endpoint__name="iris-rollout")
    bad = Rollout.objects.get(endpoint__name="iris-rollout-bad")
    assert good.current_percent == bad.current_percent == 10
    rng = random.Random(5)
    for _ in range(4):
        for rollout, slower in ((good, 1.0), (bad, 3.0)):
            rollout.refresh_from_db()
            if not rollout.is_active:
                continue
            endpoint = rollout.endpoint
            endpoint.refresh_from_db()
            versions = [(f"{endpoint.model_version.model.name}:{endpoint.model_version.version}",
                         100.0 - endpoint.canary_traffic_percent, endpoint.model_version.reference_profile, []),
                        (f"{endpoint.canary_version.model.name}:{endpoint.canary_version.version}",
                         float(endpoint.canary_traffic_percent), endpoint.canary_version.reference_profile, [])]
            traffic = simulate.TrafficProfile(name=endpoint.name, namespace=endpoint.project.namespace, protocol="v1",
                                              versions=versions, latency_sigma=0.2, error_rate=0.002,
                                              slower_canary=slower)
            start = rollout.step_started_at.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)
            calls = [simulate.make_call(traffic, at=start + timedelta(seconds=i * 0.3), rng=rng) for i in range(600)]
            inference_records_ingest([pair_of(c, project_id=endpoint.project_id, endpoint_id=endpoint.pk)
                                      for c in calls])
            now = rollout.step_started_at + timedelta(minutes=5)
            decision = gates.evaluate_rollout(rollout_id=rollout.pk, now=now)
            if decision is not None:
                rollout_apply(decision_id=decision.pk, now=now)
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.state == Rollout.State.PROMOTED and good.endpoint.model_version.version == 2
    assert bad.state == Rollout.State.ROLLED_BACK and bad.step_index == 0
    assert Endpoint.objects.get(name="iris-rollout-bad").canary_version is None  # removed, as the demo's policy says
