"""reconcile_all over 1,000 endpoints in 10 namespaces against the fake API server with 5 ms
of injected latency per request: API calls and wall time when (a) nothing changed and
(b) 10% of the endpoints changed.

    make bench PYTEST_ARGS="-k reconcile"
"""

from __future__ import annotations

import os
import time

import pytest

from endpoints.models import Endpoint
from endpoints.sandbox.apiserver import FakeApiServer
from endpoints.services import endpoints as endpoint_services
from endpoints.services.endpoints import endpoint_create, endpoint_update
from endpoints.services.platform import sync_builtin_runtimes
from endpoints.services.projects import project_create
from endpoints.services.reconciler import reconcile_cluster
from tests.endpoints.endpoint_factories import ClusterFactory, ModelVersionFactory, RegisteredModelFactory

ENDPOINTS = int(os.environ.get("BENCH_ENDPOINTS", "1000"))
NAMESPACES = 10
LATENCY = 0.005

pytestmark = pytest.mark.django_db(transaction=True)


def _calls(server) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in server.requests():
        key = f"{record.verb} {record.resource}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_reconcile_all_1000_endpoints(admin_user, report, monkeypatch):
    # The periodic pass does all the work here: no per-change task is enqueued (as if every
    # task had been lost), so (b) measures the pass applying 10% of the fleet itself.
    monkeypatch.setattr(endpoint_services, "_enqueue_reconcile", lambda endpoint_id: None)
    server = FakeApiServer().start()
    try:
        sync_builtin_runtimes()
        cluster = ClusterFactory(name="bench", api_url=server.url)
        per_namespace = ENDPOINTS // NAMESPACES
        start = time.perf_counter()
        for n in range(NAMESPACES):
            project = project_create(actor=admin_user, name=f"team-{n}", cluster=cluster)
            model = RegisteredModelFactory(project=project, name="scorer")
            version = ModelVersionFactory(model=model, version=1, storage_uri=f"s3://models/team-{n}/1")
            for i in range(per_namespace):
                endpoint_create(actor=admin_user, project=project, name=f"ep-{i}", model_version=version,
                                deployment_mode="Knative", logging_mode="off")
        report["setup_seconds"] = round(time.perf_counter() - start, 1)
        first = reconcile_cluster(cluster=cluster)
        assert first["applied"] == ENDPOINTS
        reconcile_cluster(cluster=cluster)  # records the observed status once

        server.faults.latency(LATENCY)
        server.clear_requests()
        start = time.perf_counter()
        unchanged = reconcile_cluster(cluster=cluster)
        report["a_unchanged_wall_seconds"] = round(time.perf_counter() - start, 3)
        report["a_unchanged_api_calls"] = _calls(server)
        report["a_unchanged_result"] = {k: v for k, v in unchanged.items() if k != "errors"}
        assert _calls(server) == {"list inferenceservices": NAMESPACES}

        changed = list(Endpoint.objects.order_by("pk")[: ENDPOINTS // 10])
        for endpoint in changed:
            endpoint_update(actor=admin_user, endpoint=endpoint, max_replicas=3)
        server.clear_requests()
        start = time.perf_counter()
        result = reconcile_cluster(cluster=cluster)
        report["b_10pct_changed_wall_seconds"] = round(time.perf_counter() - start, 3)
        report["b_10pct_changed_api_calls"] = _calls(server)
        report["b_10pct_changed_result"] = {k: v for k, v in result.items() if k != "errors"}
        assert result["applied"] == len(changed)
        report["injected_latency_ms"] = LATENCY * 1000
        report["endpoints"] = ENDPOINTS
    finally:
        server.stop()
