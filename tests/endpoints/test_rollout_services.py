"""Automated rollouts: policies refuse nonsense with field errors; starting is refused in
Standard mode and on a cluster that copies the bookkeeping annotations onto pods (each with
its reason); a person's edit pauses a running rollout (audited); pause, resume, abort and skip
work from the pages and the API for those allowed, and a Viewer sees the timeline but cannot
pause or abort."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints import rollout_policy
from endpoints.models import Rollout, RolloutPolicy
from endpoints.services import rollouts
from endpoints.services.capabilities import store_reading
from endpoints.services.endpoints import endpoint_create, endpoint_update
from tests.endpoints.endpoint_factories import grant
from tests.endpoints.test_cluster_rules import reading
from tests.factories import UserFactory
from tests.monitoring.rollout_helpers import rollout_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(alice):
    endpoint = rollout_endpoint(alice)
    grant(alice, endpoint.project, "view", "deploy", "manage")
    return endpoint


def _v2(endpoint):
    return endpoint.model_version.model.versions.exclude(pk=endpoint.model_version_id).get()


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"steps": [10, 5, 100]}, "steps", "Steps must increase"),
    ({"steps": [10, 10]}, "steps", "Steps must increase"),
    ({"steps": [0, 50]}, "steps", "from 1 to 100"),
    ({"steps": [50, 150]}, "steps", "from 1 to 100"),
    ({"steps": []}, "steps", "at least one step"),
    ({"steps": "10, ten"}, "steps", "is not a percentage"),
    ({"max_p99_ratio": 0.5}, "max_p99_ratio", "a ratio from 1 to 100"),
    ({"max_error_rate_increase": -1}, "max_error_rate_increase", "percentage points from 0 to 100"),
    ({"max_prediction_psi": 0}, "max_prediction_psi", "above 0"),
    ({"max_prediction_js": 2}, "max_prediction_js", "Jensen–Shannon"),
    ({"min_step_requests": 0}, "min_step_requests", "whole number from 1"),
    ({"min_step_minutes": 30, "max_wait_minutes": 10}, "max_wait_minutes", "cannot be shorter"),
    ({"on_failure": "shrug"}, "on_failure", "Choose one of"),
])
def test_nonsense_policies_are_refused_with_the_fields_message(data, field, message):
    with pytest.raises(ValidationError) as caught:
        rollout_policy.validate(data)
    assert message in " ".join(caught.value.message_dict[field])


def test_the_built_in_defaults_are_the_documented_ones():
    policy = rollout_policy.validate({})
    assert policy["steps"] == [10, 25, 50, 100]
    assert (policy["min_step_minutes"], policy["min_step_requests"]) == (5, 200)
    assert (policy["max_error_rate_increase"], policy["max_p99_ratio"], policy["max_prediction_psi"]) == (1.0, 1.2, 0.2)
    assert policy["max_wait_minutes"] == 60


def test_an_endpoint_policy_wins_over_the_project_default(alice, endpoint):
    assert rollouts.effective_policy(endpoint)[1] == "built-in"
    rollouts.rollout_policy_save(actor=alice, project=endpoint.project, steps=[20, 100])
    assert rollouts.effective_policy(endpoint) == ({**rollout_policy.DEFAULTS, "steps": [20, 100]}, "project")
    rollouts.rollout_policy_save(actor=alice, endpoint=endpoint, steps=[5, 50, 100], min_step_requests=50)
    policy, source = rollouts.effective_policy(endpoint)
    assert source == "endpoint" and policy["steps"] == [5, 50, 100] and policy["min_step_requests"] == 50
    assert AuditEvent.objects.filter(action="rollout_policy.update").count() == 2
    with pytest.raises(ValidationError):
        rollouts.rollout_policy_save(actor=alice, endpoint=endpoint, steps=[50, 20])
    assert RolloutPolicy.objects.get(endpoint=endpoint).steps == [5, 50, 100]  # nothing stored


def test_standard_mode_is_refused_with_the_reason(alice, endpoint):
    other = endpoint_create(actor=alice, project=endpoint.project, name="standard", model_version=endpoint.model_version,
                            deployment_mode="Standard")
    with pytest.raises(ValidationError, match="spec.canary"):
        rollouts.rollout_start(actor=alice, endpoint=other, canary_version=_v2(endpoint))
    assert not Rollout.objects.exists()


def test_a_cluster_copying_bookkeeping_annotations_to_pods_is_refused(alice, endpoint):
    from endpoints.models import EndpointStatus, Revision

    # The primary ran (a canary needs a rolled-out revision to split against).
    EndpointStatus.objects.filter(endpoint=endpoint).update(applied_generation=1)
    Revision.objects.filter(endpoint=endpoint).update(outcome=Revision.Outcome.APPLIED)
    store_reading(cluster=endpoint.project.cluster, reading=reading(disallowed=()))
    with pytest.raises(ValidationError, match="serviceAnnotationDisallowedList"):
        rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    store_reading(cluster=endpoint.project.cluster, reading=reading())
    assert rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint)).is_active


def test_a_manual_edit_pauses_the_rollout_and_is_audited(alice, endpoint):
    rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.PAUSED and "changed by hand" in rollout.paused_reason
    event = AuditEvent.objects.get(action="rollout.pause")
    assert event.actor_name == "alice" and "max_replicas" in event.details["manual_change"]
    # Resuming starts the step over; the canary's share was left alone.
    rollouts.rollout_resume(actor=alice, rollout=rollout)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.RUNNING


def test_only_one_rollout_runs_at_a_time(alice, endpoint):
    rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    with pytest.raises(ValidationError, match="already running"):
        rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))


def test_abort_rolls_back_now_and_skip_promotes_with_a_reason(alice, endpoint):
    rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    rollouts.rollout_abort(actor=alice, rollout=rollout, reason="pager went off")
    endpoint.refresh_from_db()
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.ABORTED and endpoint.canary_traffic_percent == 0
    assert AuditEvent.objects.get(action="rollout.abort").details["reason"] == "pager went off"

    rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    with pytest.raises(ValidationError) as caught:
        rollouts.rollout_skip_to_promote(actor=alice, rollout=rollout, reason="  ")
    assert "reason" in caught.value.message_dict
    rollouts.rollout_skip_to_promote(actor=alice, rollout=rollout, reason="fixes the outage")
    endpoint.refresh_from_db()
    assert endpoint.model_version == _v2(endpoint).__class__.objects.get(pk=rollout.canary_version_id)
    assert AuditEvent.objects.get(action="rollout.skip").details["reason"] == "fixes the outage"


# --- pages and API, from the Viewer's and the Deployer's side ----------------------------------

@pytest.fixture
def viewer(endpoint):
    user = UserFactory(username="vera")
    grant(user, endpoint.project, "view")
    return user


@pytest.fixture
def deployer(endpoint):
    user = UserFactory(username="dana")
    grant(user, endpoint.project, "view", "deploy")
    return user


def _urls(endpoint):
    kwargs = {"project": endpoint.project.name, "name": endpoint.name}
    return {name: reverse(f"monitoring:endpoint-rollout{suffix}", kwargs=kwargs)
            for name, suffix in (("tab", ""), ("pause", "-pause"), ("abort", "-abort"), ("skip", "-skip"),
                                 ("start", "-start"))}


def test_a_viewer_sees_the_timeline_but_cannot_pause_or_abort(client, alice, endpoint, viewer):
    rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    urls = _urls(endpoint)
    client.force_login(viewer)
    page = client.get(urls["tab"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-figure="timeline"' in html and "Started" in html
    assert urls["pause"] not in html and urls["abort"] not in html and urls["start"] not in html
    assert client.post(urls["pause"]).status_code == 403
    assert client.post(urls["abort"]).status_code == 403
    api = APIClient()
    api.force_authenticate(viewer)
    assert api.get(f"/api/v1/endpoints/{endpoint.pk}/rollouts/").status_code == 200
    assert api.post(f"/api/v1/endpoints/{endpoint.pk}/rollouts/abort/").status_code == 403
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.RUNNING


def test_a_deployer_pauses_and_aborts_but_only_an_owner_skips(client, alice, endpoint, deployer):
    rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    urls = _urls(endpoint)
    client.force_login(deployer)
    html = client.get(urls["tab"]).content.decode()
    assert urls["pause"] in html and urls["skip"] not in html
    assert client.post(urls["skip"], {"reason": "x"}).status_code == 403
    assert client.post(urls["pause"]).status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.PAUSED
    assert client.post(urls["abort"], {"reason": "bad"}).status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.ABORTED


def test_start_form_and_api_refuse_nonsense_with_field_errors(client, alice, endpoint):
    client.force_login(alice)
    urls = _urls(endpoint)
    response = client.post(urls["start"], {"canary_version": _v2(endpoint).pk, "steps": "50, 20",
                                           "min_step_minutes": 5, "min_step_requests": 200, "max_wait_minutes": 60,
                                           "prediction_baseline": "primary", "on_timeout": "fail",
                                           "on_failure": "rollback", "on_success": "promote"})
    assert response.status_code == 400 and "Steps must increase" in response.content.decode()
    assert not Rollout.objects.exists()
    api = APIClient()
    api.force_authenticate(alice)
    response = api.post(f"/api/v1/endpoints/{endpoint.pk}/rollouts/",
                        {"canary_version": _v2(endpoint).pk, "policy": {"max_p99_ratio": 0.3}}, format="json")
    assert response.status_code == 400
    assert "max_p99_ratio" in response.json()["errors"] and "ratio from 1 to 100" in response.json()["detail"]
    response = api.post(f"/api/v1/endpoints/{endpoint.pk}/rollouts/",
                        {"canary_version": _v2(endpoint).pk, "policy": {"steps": [20, 100]}}, format="json")
    assert response.status_code == 201 and response.json()["traffic_percent"] == 20
    assert response.json()["decisions"][0]["kind"] == "start"


def test_the_rollout_tab_costs_the_same_queries_with_more_rollouts(client, alice, endpoint):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(alice)
    url = _urls(endpoint)["tab"]
    rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
    rollouts.rollout_abort(actor=alice, rollout=rollout)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for _ in range(4):
        rollout = rollouts.rollout_start(actor=alice, endpoint=endpoint, canary_version=_v2(endpoint))
        rollouts.rollout_pause(actor=alice, rollout=rollout)
        rollouts.rollout_abort(actor=alice, rollout=rollout)
    with CaptureQueriesContext(connection) as five:
        assert client.get(url).status_code == 200
    assert len(five) == len(one)


def test_the_edit_wizard_saves_the_rollout_policy_and_refuses_nonsense(client, alice, endpoint):
    from endpoints.forms.endpoint import EndpointForm

    client.force_login(alice)
    url = reverse("endpoints:endpoint-edit", kwargs={"project": endpoint.project.name, "name": endpoint.name})
    page = client.get(url)
    assert page.status_code == 200 and "Automated rollout policy" in page.content.decode()
    form = EndpointForm(user=alice, endpoint=endpoint)
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = [getattr(v, "pk", v) for v in value] if isinstance(value, list | tuple) else getattr(
            value, "pk", value)
    section = {"rollout-steps": "20, 100", "rollout-min_step_minutes": 10, "rollout-min_step_requests": 500,
               "rollout-max_error_rate_increase": 0.5, "rollout-max_p99_ratio": 1.1,
               "rollout-max_prediction_psi": 0.1, "rollout-prediction_baseline": "reference",
               "rollout-max_wait_minutes": 120, "rollout-on_timeout": "pause", "rollout-on_failure": "remove",
               "rollout-on_success": "promote"}
    refused = client.post(url, {**data, **section, "rollout-steps": "100, 20"})
    assert refused.status_code == 400 and "Steps must increase" in refused.content.decode()
    assert not RolloutPolicy.objects.exists()
    saved = client.post(url, {**data, **section})
    assert saved.status_code == 302
    policy, source = rollouts.effective_policy(endpoint)
    assert source == "endpoint" and policy["steps"] == [20, 100] and policy["on_failure"] == "remove"
    assert not policy["fail_on_feature_drift_alert"]  # unchecked box
    endpoint.refresh_from_db()
    assert endpoint.generation == 1  # a policy is not a change of the InferenceService
