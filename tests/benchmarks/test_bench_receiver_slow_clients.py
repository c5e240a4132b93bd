"""Slow-body clients against the ingest receivers (issue #25, docs/performance.md):

50 connections per receiver (the payload logger and the Kubernetes audit webhook) declare a
body of 100,000 bytes and send one byte every 0.25 s, and connect again as soon as they are
answered (so 100 slow connections are open all along). Meanwhile 100 ``GET /healthz`` and 100
normal POSTs to each receiver (one at a time, fresh connections) are timed: p99 < 1 s is the
gate for the receiver process (``manage.py ingest_receiver``, what deploy and ``make run`` point
the loggers at); every slow client must get 408. The same load against gunicorn as the web
process runs it (gthread, 2 workers × 4 threads) is reported for comparison (3 probes each, a request without an answer after 10 s counted as
"timeout"), not gated.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> make bench PYTEST_ARGS="-k slow_clients"
"""

from __future__ import annotations

import os
import statistics
import threading
import time

import pytest
from django.urls import reverse

from tests.audit import receiver_process as rp
from tests.audit import samples
from tests.monitoring.helpers import monitored_endpoint

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SLOW = int(os.environ.get("BENCH_SLOW_CLIENTS", "50"))
PROBES = int(os.environ.get("BENCH_SLOW_PROBES", "100"))


def _token() -> str:
    from console.access import roles, tokens
    from tests.factories import UserFactory

    roles.ensure_global_roles()
    user = UserFactory(username="k8s-audit", is_service_account=True, password=None, roles=[roles.INGESTER])
    return tokens.token_create(actor=user, user=user, name="apiserver", scopes=["ingest"])[1]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _run(port: int, endpoint, token: str, probes: int = PROBES, give_up: float = 30.0) -> dict:
    def _timed(port, method, path, **kwargs) -> tuple[int | str, float]:
        try:
            return rp.timed_request(port, method, path, timeout=give_up, **kwargs)
        except OSError:  # no answer in time
            return "timeout", give_up

    kserve_path = reverse("ingest:kserve", kwargs={"ingest_key": endpoint.project.ingest_key})
    k8s_path = reverse("ingest:kubernetes")
    k8s_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    probing_done = threading.Event()
    pool_a, slow_a = rp.slow_clients(SLOW, port, kserve_path, {"Content-Type": "application/cloudevents-batch+json"},
                                     until=probing_done)
    pool_b, slow_b = rp.slow_clients(SLOW, port, k8s_path, k8s_headers, until=probing_done)
    time.sleep(0.5)
    times: dict[str, list[float]] = {"healthz": [], "kserve": [], "kubernetes": []}
    statuses: dict[str, set] = {key: set() for key in times}
    started = time.monotonic()
    for n in range(probes):
        status, seconds = _timed(port, "GET", "/healthz")
        times["healthz"].append(seconds)
        statuses["healthz"].add(status)
        delivery = samples.binary_event(event_id=f"probe-{port}-{n}", kind="request", isvc=endpoint.name,
                                        namespace=endpoint.project.namespace)
        status, seconds = _timed(port, "POST", kserve_path, body=delivery.body, headers=rp.http_headers(delivery))
        times["kserve"].append(seconds)
        statuses["kserve"].add(status)
        body = samples.event_list([samples.k8s_event(audit_id=f"probe-{port}-{n}")])
        status, seconds = _timed(port, "POST", k8s_path, body=body, headers=k8s_headers)
        times["kubernetes"].append(seconds)
        statuses["kubernetes"].add(status)
    probing = time.monotonic() - started
    probing_done.set()
    results = [r for f in slow_a + slow_b for r in f.result(timeout=120)]
    pool_a.shutdown()
    pool_b.shutdown()
    out = {"probing_seconds": round(probing, 1), "slow_connections": len(results),
           "slow_client_statuses": sorted({str(r.status) for r in results}),
           "slow_client_cut_off_after_s_max": round(max(r.seconds for r in results), 1)}
    for key, values in times.items():
        out[f"{key}_statuses"] = sorted(statuses[key], key=str)
        out[f"{key}_p50_ms"] = round(statistics.median(values) * 1000, 1)
        out[f"{key}_p99_ms"] = round(_p(values, 0.99) * 1000, 1)
    return out


def test_fifty_slow_clients_per_receiver(report, tmp_path):
    endpoint = monitored_endpoint()
    token = _token()
    env = {"AUDIT_INGEST_BODY_TIMEOUT_SECONDS": "60"}
    report["load_average_before"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    receiver, port = rp.start_receiver(tmp_path, threads=8, **env)
    try:
        result = _run(port, endpoint, token)
    finally:
        rp.stop(receiver)
    report["receiver_process"] = result
    web, port = rp.start_gunicorn(tmp_path, workers=2, threads=4, **env)
    try:
        report["gunicorn_for_comparison"] = _run(port, endpoint, token, probes=3, give_up=10.0)
    finally:
        rp.stop(web)
    report["load_average_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    assert result["slow_client_statuses"] == ["408"]
    assert result["healthz_statuses"] == [200] and result["kserve_statuses"] == [202]
    assert result["kubernetes_statuses"] == [202]
    for key in ("healthz", "kserve", "kubernetes"):
        assert result[f"{key}_p99_ms"] < 1000, (key, result)
