"""Test data for monitoring: an endpoint whose model version has a reference profile, and
payload-logger pairs shaped as the audit ingest pipeline delivers them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from audit.inference import InferencePair
from endpoints.models import Endpoint
from endpoints.profiles import profile_columns
from monitoring.models import MonitoringConfig
from tests.endpoints.endpoint_factories import EndpointFactory, ModelVersionFactory, ProjectFactory

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
BASE_TIME = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def reference_profile(rows: int = 2000, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    columns = {name: [float(v) for v in rng.normal(5.0 + i, 1.0, rows)] for i, name in enumerate(FEATURES)}
    columns["prediction"] = [int(v) for v in rng.integers(0, 3, rows)]
    return profile_columns(columns, prediction_column="prediction")


def monitored_endpoint(*, project=None, name: str = "iris", protocol: str = "v1", logging_mode: str = "all",
                       canary: bool = False, min_window_rows: int | None = 50, **extra) -> Endpoint:
    """An endpoint (model "iris") whose versions carry a reference profile. Its drift windows
    need 50 rows for a verdict (tests send small windows; the default is 500), unless
    ``min_window_rows`` is None (no monitoring settings row: the defaults)."""
    project = project or ProjectFactory(name="fraud")
    signature = [{"name": n, "type": "numeric"} for n in FEATURES]
    v1 = ModelVersionFactory(model__project=project, model__name=f"{name}-model", version=1,
                             input_signature=signature, prediction_column="prediction",
                             reference_profile=reference_profile())
    endpoint = EndpointFactory(project=project, name=name, model_version=v1, protocol=protocol,
                               logging_mode=logging_mode, **extra)
    if canary:
        v2 = ModelVersionFactory(model=v1.model, version=2, input_signature=signature, prediction_column="prediction",
                                 reference_profile=reference_profile(seed=5))
        endpoint.canary_version = v2
        endpoint.canary_traffic_percent = 20
        endpoint.save()
    if min_window_rows is not None:
        MonitoringConfig.objects.create(endpoint=endpoint, min_window_rows=min_window_rows)
    return endpoint


def label(endpoint: Endpoint, version=None) -> str:
    version = version or endpoint.model_version
    return f"{version.model.name}:{version.version}"


def v1_bodies(rows: list[list[float]], predictions: list) -> tuple[bytes, bytes]:
    return json.dumps({"instances": rows}).encode(), json.dumps({"predictions": predictions}).encode()


def pair(endpoint: Endpoint, *, at: datetime = BASE_TIME, latency_ms: float | None = 25.0, rows=None,
         predictions=None, event_id: str | None = None, version=None, status: str | None = None,
         caller: str = "alice", body: tuple[bytes, bytes | None] | None = None, by_name: bool = False,
         annotation: str | None = None) -> InferencePair:
    """One pair as ``audit.inference.dispatch`` hands it over (``latency_ms=None``: no response)."""
    rows = rows if rows is not None else [[5.0, 6.0, 7.0, 8.0]]
    predictions = predictions if predictions is not None else [1] * len(rows)
    request_body, response_body = body or v1_bodies(rows, predictions)
    answered = latency_ms is not None
    return InferencePair(
        project_id=endpoint.project_id,
        endpoint_id=None if by_name else endpoint.pk,
        namespace=endpoint.project.namespace,
        inference_service=endpoint.name,
        component="predictor",
        event_id=event_id or str(uuid.uuid4()),
        request_time=at,
        response_time=at + timedelta(milliseconds=latency_ms) if answered else None,
        request_body=request_body,
        response_body=response_body if answered else None,
        content_type="application/json",
        metadata={"X-Console-Principal": [caller]} if caller else {},
        annotations={"inference-console.io/model-version": annotation if annotation is not None
                     else label(endpoint, version)},
        status=status or ("ok" if answered else "timeout"),
    )
