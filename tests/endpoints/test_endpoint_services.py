"""Endpoint services as the UI and API use them: every change writes its Revision and its
AuditEvent in one transaction (or nothing at all), generation moves only on real changes,
and refused changes store nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints.models import Endpoint, EndpointStatus, Revision
from endpoints.services import endpoints as services
from tests.endpoints.endpoint_factories import deploy_setup, grant, set_quota

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(alice):
    return deploy_setup(actor=alice)


def _counts():
    return Endpoint.objects.count(), Revision.objects.count(), AuditEvent.objects.count()


def _events(action: str, endpoint: Endpoint):
    return AuditEvent.objects.filter(action=action, target_type="endpoint", target_id=str(endpoint.pk))


def _create(setup, actor, name="scorer-live", **config):
    config = {"max_replicas": 2, **config}
    return services.endpoint_create(actor=actor, project=setup.project, name=name, model_version=setup.v1, **config)


def test_create_writes_generation_one_with_revision_audit_and_status(setup, alice):
    endpoint = _create(setup, alice)

    assert endpoint.generation == 1
    revision = Revision.objects.get(endpoint=endpoint)
    assert (revision.generation, revision.change_summary, revision.actor_name) == (1, "created", "alice")
    assert revision.manifest["metadata"]["name"] == "scorer-live"
    assert revision.spec["model"]["storage_uri"] == "s3://models/scorer/1"
    event = _events("endpoint.create", endpoint).get()
    assert event.actor_name == "alice" and event.details["generation"] == 1
    assert EndpointStatus.objects.get(endpoint=endpoint).applied_generation == 0


def test_update_bumps_generation_and_records_old_and_new(setup, alice):
    endpoint = _create(setup, alice)

    services.endpoint_update(actor=alice, endpoint=endpoint, max_replicas=4)

    endpoint.refresh_from_db()
    assert endpoint.generation == 2
    assert list(endpoint.revisions.values_list("generation", flat=True)) == [2, 1]
    event = _events("endpoint.update", endpoint).get()
    assert event.details["old"]["max_replicas"] == 2 and event.details["new"]["max_replicas"] == 4


def test_update_without_a_real_change_keeps_the_generation(setup, alice):
    endpoint = _create(setup, alice)
    before = _counts()

    services.endpoint_update(actor=alice, endpoint=endpoint, max_replicas=2, protocol="v1")
    assert _counts() == before

    # The description is not part of the InferenceService: saved, but no new generation.
    services.endpoint_update(actor=alice, endpoint=endpoint, description="scores card payments")
    endpoint.refresh_from_db()
    assert (endpoint.generation, endpoint.description) == (1, "scores card payments")
    assert endpoint.revisions.count() == 1


def test_rollback_creates_a_new_generation_from_the_old_spec(setup, alice):
    endpoint = _create(setup, alice)
    services.endpoint_update(actor=alice, endpoint=endpoint, model_version=setup.v2, max_replicas=3)
    first = endpoint.revisions.get(generation=1)

    services.endpoint_rollback(actor=alice, endpoint=endpoint, revision=first)

    endpoint.refresh_from_db()
    assert endpoint.generation == 3
    assert (endpoint.model_version_id, endpoint.max_replicas) == (setup.v1.pk, 2)
    latest = endpoint.revisions.get(generation=3)
    assert latest.change_summary == "rollback to generation 1"
    assert latest.spec["model"]["version_id"] == setup.v1.pk
    assert _events("endpoint.rollback", endpoint).get().details["from_generation"] == 1


def test_stop_and_start_are_generations_with_audit(setup, alice):
    endpoint = _create(setup, alice)

    services.endpoint_set_state(actor=alice, endpoint=endpoint, stopped=True)
    services.endpoint_set_state(actor=alice, endpoint=endpoint, stopped=True)  # already stopped: no-op

    endpoint.refresh_from_db()
    assert (endpoint.state, endpoint.generation) == ("stopped", 2)
    stop_revision = endpoint.revisions.get(generation=2)
    assert stop_revision.manifest["metadata"]["annotations"]["serving.kserve.io/stop"] == "true"
    assert _events("endpoint.stop", endpoint).count() == 1

    services.endpoint_set_state(actor=alice, endpoint=endpoint, stopped=False)
    endpoint.refresh_from_db()
    assert (endpoint.state, endpoint.generation) == ("active", 3)
    assert _events("endpoint.start", endpoint).count() == 1


def test_delete_marks_the_endpoint_and_audits_it(setup, alice):
    endpoint = _create(setup, alice)

    services.endpoint_delete(actor=alice, endpoint=endpoint)

    endpoint.refresh_from_db()
    assert endpoint.state == "deleting"
    assert _events("endpoint.delete", endpoint).count() == 1


def test_a_failing_audit_write_rolls_the_whole_change_back(setup, alice, monkeypatch):
    endpoint = _create(setup, alice)
    before = _counts()

    def broken_record(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr("endpoints.services.endpoints.audit.record", broken_record)
    with pytest.raises(RuntimeError):
        services.endpoint_update(actor=alice, endpoint=endpoint, max_replicas=5)

    endpoint.refresh_from_db()
    assert (endpoint.generation, endpoint.max_replicas) == (1, 2)
    assert _counts() == before  # no revision 2 without its event


@pytest.mark.parametrize(
    ("config", "field", "fragment"),
    [
        ({"name": "Bad_Name"}, "name", "not a valid endpoint name"),
        ({"deployment_mode": "Standard", "min_replicas": 0}, "min_replicas", "Scale-to-zero needs Knative"),
        ({"accelerator_count": 99, "max_replicas": 1}, "accelerator_count", "exceeds the 4"),
        ({"protocol": "openai"}, "protocol", "does not serve the OpenAI-compatible API"),
        ({"protocol": "v2", "deployment_mode": "Standard", "canary_traffic_percent": 10}, "canary_version",
         "need Knative mode"),
    ],
)
def test_refused_create_stores_nothing(setup, alice, config, field, fragment):
    if "accelerator_count" in config:
        config["hardware_profile"] = setup.profile
    if "canary_traffic_percent" in config:
        config["canary_version"] = setup.v2
    name = config.pop("name", "scorer-live")
    before = _counts()

    with pytest.raises(ValidationError) as caught:
        _create(setup, alice, name=name, **config)

    assert any(fragment in message for message in caught.value.message_dict[field])
    assert _counts() == before


def test_quota_exceeded_is_refused_and_nothing_stored(setup, alice):
    set_quota(setup.project, setup.profile, 2)
    before = _counts()

    with pytest.raises(ValidationError) as caught:
        _create(setup, alice, hardware_profile=setup.profile, accelerator_count=2, max_replicas=2)

    assert "quota" in " ".join(caught.value.message_dict["accelerator_count"])
    assert _counts() == before


def test_quota_exceeded_is_a_400_through_the_api(setup, alice):
    set_quota(setup.project, setup.profile, 2)
    grant(alice, setup.project, "view", "deploy")
    api = APIClient()
    api.force_authenticate(alice)
    before = _counts()

    response = api.post(reverse("endpoint-list"), {
        "project": setup.project.pk, "name": "gpu-scorer", "model_version": setup.v1.pk,
        "hardware_profile": setup.profile.pk, "accelerator_count": 2, "max_replicas": 2}, format="json")

    assert response.status_code == 400
    assert "quota" in response.json()["errors"]["accelerator_count"][0]
    assert _counts() == before


def test_deployment_mode_can_change_until_the_first_apply_and_not_after(
        alice, fake_apiserver, django_capture_on_commit_callbacks):
    setup = deploy_setup(actor=alice, api_url=fake_apiserver.url)
    endpoint = _create(setup, alice)  # not applied: on-commit callbacks do not run in this test transaction
    services.endpoint_update(actor=alice, endpoint=endpoint, deployment_mode="Standard")
    endpoint.refresh_from_db()
    assert endpoint.deployment_mode == "Standard"

    with django_capture_on_commit_callbacks(execute=True):
        endpoint = _create(setup, alice, name="applied-scorer")
    assert EndpointStatus.objects.get(endpoint=endpoint).applied_generation == 1
    live = setup.live_isvc("applied-scorer")
    assert live["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    before = _counts()

    with pytest.raises(ValidationError) as caught:
        services.endpoint_update(actor=alice, endpoint=endpoint, deployment_mode="Standard")

    assert "refuses to change" in caught.value.message_dict["deployment_mode"][0]
    endpoint.refresh_from_db()
    assert (endpoint.deployment_mode, endpoint.generation) == ("Knative", 1)
    assert _counts() == before


def test_confirmed_changes_reach_the_cluster_after_commit(
        alice, fake_apiserver, django_capture_on_commit_callbacks):
    setup = deploy_setup(actor=alice, api_url=fake_apiserver.url)
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = _create(setup, alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)

    live = setup.live_isvc("scorer-live")
    assert live["spec"]["predictor"]["maxReplicas"] == 3
    assert live["metadata"]["annotations"]["inference-console.io/generation"] == "2"
    assert list(endpoint.revisions.values_list("generation", "outcome")) == [(2, "applied"), (1, "superseded")]

    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_delete(actor=alice, endpoint=endpoint)
    assert setup.live_isvc("scorer-live") is None or setup.live_isvc("scorer-live")["metadata"].get(
        "deletionTimestamp")
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
