"""The optional Prometheus source, against a tiny fake Prometheus HTTP API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from django.urls import reverse

from tests.endpoints.endpoint_factories import grant
from tests.monitoring.helpers import monitored_endpoint

pytestmark = pytest.mark.django_db


class FakePrometheus:
    """Answers /api/v1/query_range: series for queries naming one of ``metrics``, else empty."""

    def __init__(self, metrics: dict[str, float], status: int = 200):
        self.metrics = metrics
        self.status = status
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                fake.queries.append(params.get("query", ""))
                if parts.path != "/api/v1/query_range" or fake.status != 200:
                    self._send(fake.status if fake.status != 200 else 404,
                               {"status": "error", "errorType": "bad_data", "error": "unknown metric"})
                    return
                start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
                result = []
                for metric, value in fake.metrics.items():
                    if metric in params["query"]:
                        factor = 2.0 if "0.99" in params["query"] else 1.0
                        times = [start + step * i for i in range(int((end - start) // step) + 1)]
                        result.append({"metric": {}, "values": [[t, str(value * factor)] for t in times]})
                        break
                self._send(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

            def _send(self, code, payload):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def latency_json(client, alice, endpoint) -> dict:
    grant(alice, endpoint.project, "view")
    client.force_login(alice)
    path = reverse("monitoring:endpoint-latency-data", kwargs={"project": endpoint.project.name,
                                                               "name": endpoint.name})
    return client.get(path, {"range": "1h"}).json()


def test_knative_metrics_are_shown_beside_the_logger_figures(client, alice, settings):
    endpoint = monitored_endpoint()
    with FakePrometheus({"revision_request_count": 4.0, "revision_request_latencies_bucket": 35.0}) as prometheus:
        settings.PROMETHEUS_URL = prometheus.url
        body = latency_json(client, alice, endpoint)
    figure = body["figures"]["prometheus"]
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["p50", "p95", "p99", "requests/s"]
    assert set(figure["data"][0]["y"]) == {35.0}  # Knative latencies are already in ms
    assert set(figure["data"][2]["y"]) == {70.0}
    assert set(figure["data"][3]["y"]) == {4.0}
    assert "Knative queue-proxy" in figure["layout"]["annotations"][0]["text"]
    rate_query = prometheus.queries[0]
    assert rate_query == ('sum(rate(revision_request_count{namespace_name="fraud", '
                          'service_name=~"iris-predictor.*"}[5m]))')
    assert any(q.startswith("histogram_quantile(0.95, sum by (le) (rate(revision_request_latencies_bucket{")
               for q in prometheus.queries)


def test_the_first_metric_family_with_data_is_used_and_remembered(client, alice, settings):
    endpoint = monitored_endpoint()
    with FakePrometheus({"request_predict_seconds": 0.02}) as prometheus:
        settings.PROMETHEUS_URL = prometheus.url
        body = latency_json(client, alice, endpoint)
        tried = [q.split("(")[2].split("{")[0] for q in prometheus.queries if q.startswith("sum(rate(")]
        assert tried == ["revision_request_count", "http_server_request_duration_seconds_count",
                         "request_predict_seconds_count"]
        prometheus.queries.clear()
        latency_json(client, alice, endpoint)
        assert len(prometheus.queries) == 4  # the remembered family: rate + three quantiles
    assert body["figures"]["prometheus"]["data"][0]["y"][0] == pytest.approx(20.0)  # seconds -> ms


def test_no_metrics_for_the_endpoint_says_so(client, alice, settings):
    with FakePrometheus({}) as prometheus:
        settings.PROMETHEUS_URL = prometheus.url
        body = latency_json(client, alice, monitored_endpoint())
    assert body["figures"]["prometheus"] is None
    assert "no KServe or Knative request metrics" in body["empty"]["prometheus"]


def test_a_failing_prometheus_is_reported_not_fatal(client, alice, settings):
    with FakePrometheus({}, status=503) as prometheus:
        settings.PROMETHEUS_URL = prometheus.url
        body = latency_json(client, alice, monitored_endpoint())
    assert body["empty"]["prometheus"] == "Prometheus answered HTTP 503: unknown metric."
    assert "throughput" in body["figures"]


def test_an_unreachable_prometheus_is_reported(client, alice, settings):
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    body = latency_json(client, alice, monitored_endpoint())
    assert body["empty"]["prometheus"].startswith("Prometheus could not be reached")
