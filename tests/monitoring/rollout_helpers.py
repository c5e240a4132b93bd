"""Deterministic canary traffic for rollout tests: ``monitoring.simulate`` builds the payload
logger's events (seeded), which are paired as the ingest pipeline pairs them and recorded
through ``inference_records_ingest`` — the same rollups and bin counts production fills."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime, timedelta

from audit.inference import InferencePair
from endpoints.models import Endpoint
from endpoints.services.endpoints import endpoint_create
from monitoring import simulate
from monitoring.services import inference_records_ingest
from tests.endpoints.endpoint_factories import deploy_setup
from tests.monitoring.helpers import FEATURES, reference_profile

SIGNATURE = [{"name": n, "type": "numeric"} for n in FEATURES]


def rollout_endpoint(actor, *, project_name: str = "fraud", api_url: str | None = None) -> Endpoint:
    """A Knative endpoint serving v1 of a model whose v1 and v2 share a reference profile (the
    same prediction bins, so the prediction gate compares canary with primary)."""
    extra = {"api_url": api_url} if api_url else {}
    setup = deploy_setup(actor=actor, project_name=project_name, **extra)
    profile = reference_profile()
    for version in (setup.v1, setup.v2):
        version.input_signature = SIGNATURE
        version.prediction_column = "prediction"
        version.reference_profile = profile
        version.save()
    return endpoint_create(actor=actor, project=setup.project, name="scorer", model_version=setup.v1,
                           deployment_mode="Knative")


def _label(version) -> str:
    return f"{version.model.name}:{version.version}"


def traffic_profile(endpoint: Endpoint, *, behaviour: str = "healthy", canary_share: float | None = None
                    ) -> simulate.TrafficProfile:
    """Traffic of ``endpoint`` as it serves now; the canary ``healthy``, ``slower``,
    ``error-prone`` or ``drifting``."""
    endpoint.refresh_from_db()
    share = endpoint.canary_traffic_percent if canary_share is None else canary_share
    versions = [(_label(endpoint.model_version), float(100 - (share or 0)), endpoint.model_version.reference_profile,
                 SIGNATURE)]
    if endpoint.canary_version_id:
        versions.append((_label(endpoint.canary_version), float(share or 0),
                         endpoint.canary_version.reference_profile, SIGNATURE))
    traffic = simulate.TrafficProfile(name=endpoint.name, namespace=endpoint.project.namespace, protocol="v1",
                                      versions=versions, latency_ms=40.0, latency_sigma=0.08, error_rate=0.002,
                                      slower_canary=1.0)
    return {
        "healthy": traffic,
        "slower": replace(traffic, slower_canary=2.0),
        "error-prone": replace(traffic, canary_error_rate=0.08),
        "drifting": replace(traffic, canary_drift_shift=3.0),
    }[behaviour]


def pair_of(call: simulate.Call, *, project_id: int, endpoint_id: int) -> InferencePair:
    request_headers, request_body = call.events[0]
    response = call.events[1] if len(call.events) > 1 else None
    return InferencePair(
        project_id=project_id, endpoint_id=endpoint_id, namespace=request_headers["Ce-Namespace"],
        inference_service=request_headers["Ce-Inferenceservicename"], component="predictor",
        event_id=call.event_id, request_time=call.request_time, response_time=call.response_time,
        request_body=request_body, response_body=response[1] if response else None,
        content_type=request_headers["Content-Type"], metadata=json.loads(request_headers["Ce-Metadata"]),
        annotations=json.loads(request_headers["Ce-Annotations"]), status="ok" if response else "timeout")


def send(endpoint: Endpoint, *, start: datetime, minutes: float, calls: int, behaviour: str = "healthy",
         seed: int = 1) -> int:
    """``calls`` simulated inferences spread evenly over ``minutes`` from ``start``, recorded."""
    traffic = traffic_profile(endpoint, behaviour=behaviour)
    rng = random.Random(seed)
    pairs = []
    for index in range(calls):
        at = start + timedelta(seconds=minutes * 60 * (index + 0.5) / calls)
        call = simulate.make_call(traffic, at=at, rng=rng)
        pairs.append(pair_of(call, project_id=endpoint.project_id, endpoint_id=endpoint.pk))
    inference_records_ingest(pairs)
    return calls
