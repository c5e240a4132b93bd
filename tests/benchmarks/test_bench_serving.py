"""The sandbox's serving path, hop by hop (issue #23): sequential V1 predictions of one sklearn
model straight at the model server, through the agent (payload logging on), and through the
Envoy gateway with the console's ext_authz (warm decision cache) — p50/p95 of each, so the
cost of the gateway + check and of the agent shows. Figures in docs/performance.md.

    make bench PYTEST_ARGS="-k serving"
"""

from __future__ import annotations

import http.client
import json
import statistics
import time

import pytest

from tests.sandbox.test_serving_e2e import SETOSA, Deployment, host_of, trained

pytestmark = pytest.mark.django_db(transaction=True)
CALLS = 300


def _timed(port: int, host: str, token: str | None, calls: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Host": host, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"instances": [SETOSA]}).encode()
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        connection.request("POST", "/v1/models/iris:predict", body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        out.append((time.perf_counter() - started) * 1000)
        assert answer.status == 200
    connection.close()
    return out


def _summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(ordered[int(len(ordered) * 0.95)], 2)}


def test_serving_latency_hop_by_hop(report, serving_cluster, alice, s3_server, s3_bucket, settings, live_server,
                                    django_capture_on_commit_callbacks):
    from console.access import grants
    from endpoints.services.endpoints import endpoint_create
    from tests.access.test_authz import infer_token

    settings.CONSOLE_INGEST_BASE_URL = live_server.url
    deployment = Deployment(cluster=serving_cluster, owner=alice, s3_server=s3_server, bucket=s3_bucket,
                            name="bench")
    version = deployment.version(trained())
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=deployment.project, name="iris", model_version=version,
                                   deployment_mode="Knative", logging_mode="off")
    host = host_of(deployment.ready(endpoint))
    grants.grant_create(actor=None, role="caller", target=deployment.project, user=alice, reason="bench")
    token = infer_token(alice)
    _timed(serving_cluster.gateway_port, host, token, 20)  # warm: model loaded, decision cached
    (entry,) = [e for k, e in serving_cluster.plane._processes.items() if k[:2] == ("bench", "iris")]
    report["calls"] = CALLS
    report["model server"] = _summary(_timed(entry.runtime.port, host, None, CALLS))
    report["agent -> model server"] = _summary(_timed(entry.agent_port, host, None, CALLS))
    report["Envoy + ext_authz -> agent -> model server"] = _summary(
        _timed(serving_cluster.gateway_port, host, token, CALLS))
