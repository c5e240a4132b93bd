"""Must show (issue #21): /metrics scraped from gunicorn with 2 workers plus a Celery worker
(prometheus_client's multiprocess mode, one shared directory), parsed with the Prometheus text
parser: the counters equal the reconcile passes, ingests and authorization decisions this test
made — whichever gunicorn worker answers the scrape."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit.models import IngestBatch
from tests.audit import samples
from tests.endpoints.endpoint_factories import deploy_setup
from tests.endpoints.test_celery_worker import ROOT, Worker, _database_url
from tests.factories import UserFactory
from tests.fixtures.kube import wait_for

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.celery_worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

TOKEN = "metrics-scrape-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def metrics_env(tmp_path, monkeypatch):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "METRICS_TOKEN": TOKEN}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # inherited by the worker and gunicorn
    return directory


@pytest.fixture
def gunicorn(metrics_env, tmp_path):
    port = _free_port()
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "console.settings", "DATABASE_URL": _database_url(), "DEBUG": "true",
                "PYTHONUNBUFFERED": "1"})
    env.pop("PYTEST_CURRENT_TEST", None)
    log = open(tmp_path / "gunicorn.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "console.wsgi", "-c", "python:console.gunicorn_conf",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _reachable(base), 60, "gunicorn answers /healthz", interval=0.25)
        yield base
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
        log.close()


def _reachable(base: str) -> bool:
    try:
        return _http(f"{base}/healthz")[0] == 200
    except OSError:
        return False


def _scrape(base: str) -> dict:
    status, body = _http(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body[:300]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_metrics_from_two_gunicorn_workers_and_a_celery_worker_count_what_happened(
        sandbox, alice, metrics_env, gunicorn, tmp_path):
    from console.access import roles, tokens
    from console.celery import app
    from endpoints.tasks import reconcile_all_task

    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    roles.ensure_global_roles()
    ingester = UserFactory(username="k8s-audit", is_service_account=True, password=None, roles=[roles.INGESTER])
    _, ingest_token = tokens.token_create(actor=ingester, user=ingester, name="apiserver", scopes=["ingest"])
    stranger = UserFactory(username="stranger")
    _, infer_token = tokens.token_create(actor=stranger, user=stranger, name="calls", scopes=["infer"])

    app.control.purge()
    worker = Worker(tmp_path / "worker.log")
    try:
        worker.wait_ready()
        # Authorization: 5 checks without a token (401), 3 with a token that may not call (403).
        for _ in range(5):
            assert _http(f"{gunicorn}/authz/check/v1/models/scorer:predict",
                         headers={"Host": "scorer.fraud.example.com"})[0] == 401
        for _ in range(3):
            assert _http(f"{gunicorn}/authz/check/v1/models/scorer:predict",
                         headers={"Host": "scorer.fraud.example.com", "Authorization": f"Bearer {infer_token}"})[0] == 403
        # Ingest: 4 audit EventLists accepted (processed by the worker), 2 refused without a token.
        for i in range(4):
            body = samples.event_list([samples.k8s_event(name=f"obj-{i}")])
            assert _http(f"{gunicorn}/ingest/kubernetes/", method="POST", body=body,
                         headers={"Authorization": f"Bearer {ingest_token}", "Content-Type": "application/json"}
                         )[0] == 202
        for _ in range(2):
            assert _http(f"{gunicorn}/ingest/kubernetes/", method="POST", body=b"{}",
                         headers={"Content-Type": "application/json"})[0] == 401
        # Reconcile: 3 periodic passes, run by the worker.
        for _ in range(3):
            reconcile_all_task.delay()
        try:
            wait_for(lambda: IngestBatch.objects.filter(status="done").count() == 4, 30, "ingest processed",
                     interval=0.25)
        except BaseException:
            print(list(IngestBatch.objects.values_list("pk", "status", "received_at")))
            print((tmp_path / "gunicorn.log").read_text()[-3000:])
            raise
        cluster = (("cluster", setup.cluster.name),)
        # Results are not stored (CELERY_TASK_IGNORE_RESULT): wait until the passes have run.
        wait_for(lambda: _scrape(gunicorn).get(("console_reconcile_passes_total", cluster)) == 3, 60,
                 "three reconcile passes", interval=0.5)
        # Several scrapes: whichever gunicorn worker answers, the totals are the same.
        scrapes = [_scrape(gunicorn) for _ in range(6)]
        for metrics in scrapes:
            assert metrics[("console_reconcile_passes_total", cluster)] == 3
            assert metrics[("console_reconcile_pass_duration_seconds_count", cluster)] == 3
            assert metrics[("console_authz_decisions_total", (("outcome", "unauthenticated"),))] == 5
            assert metrics[("console_authz_decisions_total", (("outcome", "deny"),))] == 3
            assert metrics[("console_authz_decision_seconds_count", ())] == 8
            assert metrics[("console_ingest_received_total", (("source", "kubernetes"),))] == 4
            assert metrics[("console_ingest_refused_total", (("source", "kubernetes"), ("status", "401")))] == 2
            assert metrics[("console_ingest_processed_total", (("outcome", "done"), ("source", "kubernetes")))] == 4
            assert metrics[("console_ingest_lag_seconds_count", (("source", "kubernetes"),))] == 4
            assert metrics[("console_worker_heartbeat_age_seconds", ())] < 60
            assert metrics[("console_task_queue_depth", (("queue", "celery"),))] == 0
    finally:
        worker.stop()
    # With no worker left, a queued task shows as depth and age.
    from console.tasks import worker_heartbeat_task

    worker_heartbeat_task.delay()
    time.sleep(1.1)
    metrics = _scrape(gunicorn)
    assert metrics[("console_task_queue_depth", (("queue", "celery"),))] == 1
    assert metrics[("console_task_queue_oldest_age_seconds", (("queue", "celery"),))] >= 1
    app.control.purge()
