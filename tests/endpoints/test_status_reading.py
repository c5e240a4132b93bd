"""Reading status beyond the phase: "scaled to zero" beside Ready, and a "why is it not ready"
that follows the endpoint when the periodic pass sees its phase change."""

from __future__ import annotations

import pytest

from endpoints.services.observation import observation_fields
from endpoints.status import scaled_to_zero
from tests.endpoints.endpoint_factories import EndpointFactory

FAILED_LIVE = {
    "metadata": {"name": "amount", "namespace": "fraud"},
    "status": {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PredictorNotReady"},
            {"type": "PredictorReady", "status": "False", "reason": "RevisionFailed",
             "message": "storage-initializer: failed to download s3://missing-bucket/m"},
        ],
        "modelStatus": {"transitionStatus": "BlockedByFailedLoad",
                        "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "bucket missing"}},
    },
}


@pytest.mark.parametrize(("phase", "min_replicas", "model_status", "expected"), [
    ("Ready", 0, {"copies": {"totalCopies": 0}}, True),
    ("Ready", 0, {"copies": {"totalCopies": 1}}, False),  # woken up by traffic
    ("Ready", 1, {"copies": {"totalCopies": 0}}, False),  # cannot scale to zero
    ("Ready", 0, {}, False),  # no copy count: nothing claimed
    ("Failed", 0, {"copies": {"totalCopies": 0}}, False),
])
def test_it_says_scaled_to_zero_only_for_a_ready_endpoint_with_no_copy(phase, min_replicas, model_status, expected):
    assert scaled_to_zero(phase=phase, min_replicas=min_replicas, model_status=model_status) is expected


@pytest.mark.django_db
def test_endpoint_without_status_row_is_not_scaled_to_zero():
    endpoint = EndpointFactory(min_replicas=0)
    endpoint.status.delete()
    endpoint.refresh_from_db()
    assert endpoint.scaled_to_zero is False


@pytest.mark.django_db
def test_pass_replaces_a_stale_explanation_when_the_phase_changes():
    endpoint = EndpointFactory(name="amount", status={
        "phase": "Deploying", "explanation": ["The InferenceService does not exist on the cluster yet."]})
    fields = observation_fields(endpoint, FAILED_LIVE)
    assert fields["phase"] == "Failed"
    assert any("failed to download s3://missing-bucket/m" in line for line in fields["explanation"])


@pytest.mark.django_db
def test_pass_keeps_the_richer_explanation_while_the_phase_is_unchanged():
    richer = ["PredictorReady is False", "Pod amount-0: container storage-initializer is in CrashLoopBackOff"]
    endpoint = EndpointFactory(name="amount", status={"phase": "Failed", "explanation": richer})
    assert observation_fields(endpoint, FAILED_LIVE)["explanation"] == richer
