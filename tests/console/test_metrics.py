"""/metrics: protected by a scrape token (constant-time comparison) or loopback only, answered
before host validation and never throttled; counters move with what the console does."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db


def _samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_without_a_token_only_loopback_clients_may_scrape():
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403


@override_settings(METRICS_TOKEN="scrape-me")
def test_with_a_token_every_scrape_must_send_it_even_from_loopback():
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 403
    answer = Client(REMOTE_ADDR="10.1.2.3").get("/metrics", headers={"authorization": "Bearer scrape-me",
                                                                     "host": "10.1.2.3:8000"})
    assert answer.status_code == 200, "a pod address as Host is fine: answered before host validation"
    assert answer["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(answer.content.decode())}
    assert {"console_task_queue_depth", "console_reconcile_passes", "console_authz_decisions"} <= names


@override_settings(METRICS_TOKEN="scrape-me", API_RATE_LIMIT_TOKEN="1/minute", API_RATE_LIMIT_USER="1/minute")
def test_scrapes_are_never_throttled():
    for _ in range(5):
        assert Client().get("/metrics", headers={"authorization": "Bearer scrape-me"}).status_code == 200


def test_authz_decisions_are_counted_by_outcome():
    before = _samples(Client().get("/metrics").content.decode())
    Client().get("/authz/check/v1/models/x:predict", headers={"host": "nothing.example.com"})
    after = _samples(Client().get("/metrics").content.decode())
    key = ("console_authz_decisions_total", (("outcome", "unauthenticated"),))
    assert after[key] - before.get(key, 0) == 1


def test_drift_alerts_and_unresolved_reconciler_alerts_are_reported(admin_user):
    from endpoints.models import ReconcileAlert
    from tests.endpoints.endpoint_factories import ClusterFactory

    cluster = ClusterFactory(name="east")
    ReconcileAlert.objects.create(cluster=cluster, kind="deletion_cap", message="x")
    ReconcileAlert.objects.create(cluster=cluster, kind="cluster_unreachable", message="y", state="resolved")
    samples = _samples(Client().get("/metrics").content.decode())
    assert samples[("console_reconcile_alerts", (("cluster", "east"), ("kind", "deletion_cap"),
                                                 ("state", "open")))] == 1
    assert not [k for k in samples if k[0] == "console_reconcile_alerts" and ("state", "resolved") in k[1]]


@override_settings(METRICS_TOKEN="scrape-me")
def test_the_worker_serves_its_own_metrics_behind_the_same_token():
    """In Kubernetes the worker runs in its own pods: its counters are scraped from its own port."""
    import urllib.error
    import urllib.request

    from console.metrics import RECONCILE_PASSES, serve_worker_metrics

    RECONCILE_PASSES.labels(cluster="worker-port-test").inc()
    server = serve_worker_metrics(0, host="127.0.0.1")
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)  # noqa: S310 - loopback
        assert refused.value.code == 403
        request = urllib.request.Request(url, headers={"Authorization": "Bearer scrape-me"})
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            text = answer.read().decode()
        assert _samples(text)[("console_reconcile_passes_total", (("cluster", "worker-port-test"),))] >= 1
        with pytest.raises(urllib.error.HTTPError) as elsewhere:
            urllib.request.urlopen(urllib.request.Request(url.replace("/metrics", "/admin/"),  # noqa: S310
                                                          headers={"Authorization": "Bearer scrape-me"}), timeout=5)
        assert elsewhere.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
