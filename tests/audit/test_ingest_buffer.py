"""The payload-logger buffer: back-pressure, refusals per InferenceService, the receiver's key
cache, the ingest worker, and — against PostgreSQL with real processes — crashes of the
worker mid-batch and of the web process right after a 202."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from audit import buffer, sealing
from audit.models import AuditEvent, InferenceEventPart, IngestRefusal
from audit.verify import verify
from monitoring.models import InferenceRecord
from tests.audit import samples
from tests.monitoring.helpers import monitored_endpoint

ROOT = Path(__file__).resolve().parents[2]


def _assert_exactly_once(endpoint, calls: int) -> None:
    assert InferenceRecord.objects.filter(endpoint=endpoint).count() == calls
    assert InferenceRecord.objects.filter(endpoint=endpoint).values("event_id").distinct().count() == calls
    events = AuditEvent.objects.filter(source="inference", action="infer.request")
    assert events.count() == calls
    assert events.values("external_id").distinct().count() == calls
    assert InferenceEventPart.objects.count() == 2 * calls
    assert buffer.buffer_depth() == 0


@pytest.mark.django_db
@override_settings(AUDIT_INGEST_BUFFER_MAX_DEPTH=4, AUDIT_INGEST_DEPTH_CACHE_SECONDS=0,
                   AUDIT_INGEST_REFUSAL_FLUSH_SECONDS=0, AUDIT_INGEST_RETRY_AFTER_SECONDS=7)
def test_a_full_buffer_answers_503_with_retry_after_counts_refusals_and_drains_to_zero(post_kserve, client,
                                                                                        admin_user):
    cache.clear()  # the "audited for this interval" marks of earlier tests
    endpoint = monitored_endpoint()
    deliveries = [d for n in range(4) for d in samples.logger_call(endpoint, n)]
    for delivery in deliveries[:4]:
        assert post_kserve(endpoint.project, delivery, drain=False).status_code == 202
    assert buffer.buffer_depth() == 4
    # The workers are stopped: the receiver refuses instead of growing the buffer.
    for delivery in deliveries[4:]:
        response = post_kserve(endpoint.project, delivery, drain=False)
        assert response.status_code == 503
        assert response["Retry-After"] == "7"
        assert "buffer is full" in response.json()["detail"]
    assert buffer.buffer_depth() == 4
    refused = IngestRefusal.objects.get(project_id=endpoint.project_id, inference_service=endpoint.name)
    assert refused.count == 4
    # Audited once for the interval, not once per refusal.
    audited = AuditEvent.objects.filter(action="ingest.refuse")
    assert audited.count() == 1
    assert audited.get().project_id == endpoint.project_id and audited.get().outcome == "failure"
    # Shown where people look: the endpoint's Latency tab and the auditor's home (with the depth).
    client.force_login(admin_user)
    latency = client.get(reverse("monitoring:endpoint-latency",
                                 kwargs={"project": endpoint.project.name, "name": endpoint.name})).content.decode()
    assert "4 payload-logger\n    events of this endpoint were refused" in latency
    home = client.get(reverse("home")).content.decode()
    assert "Payload-logger buffer" in home and "<dt>Waiting</dt><dd>4 deliveries</dd>" in home
    assert f"{endpoint.project.name}/{endpoint.name}: 4," in home
    # A worker runs again: the buffer drains to zero and the receiver accepts again.
    assert buffer.buffer_drain()["deliveries"] == 4
    assert buffer.buffer_depth() == 0
    assert post_kserve(endpoint.project, deliveries[4], drain=False).status_code == 202


@pytest.mark.django_db
def test_a_rotated_key_is_refused_within_a_second_by_the_caching_receiver(client, admin_user):
    from endpoints.services.projects import project_rotate_ingest_key

    endpoint = monitored_endpoint()
    project = endpoint.project
    old_url = reverse("ingest:kserve", kwargs={"ingest_key": project.ingest_key})
    delivery = samples.logger_call(endpoint, 1)[0]

    def post(url):
        return client.post(url, data=delivery.body, content_type=delivery.content_type, **delivery.headers)

    assert post(old_url).status_code == 202  # the key is now cached in this process
    project_rotate_ingest_key(actor=admin_user, project=project)
    rotated_at = time.monotonic()
    while post(old_url).status_code == 202:
        assert time.monotonic() - rotated_at < 1.0, "the old key still worked a second after the rotation"
        time.sleep(0.05)
    assert post(old_url).status_code == 404
    project.refresh_from_db()
    assert post(reverse("ingest:kserve", kwargs={"ingest_key": project.ingest_key})).status_code == 202


@pytest.mark.django_db
def test_the_ingest_worker_command_drains_the_buffer_into_records_and_the_io_audit(post_kserve):
    endpoint = monitored_endpoint()
    for n in range(5):
        for delivery in samples.logger_call(endpoint, n):
            post_kserve(endpoint.project, delivery, drain=False)
    assert buffer.buffer_depth() == 10 and not InferenceRecord.objects.exists()
    call_command("ingest_worker", "--once", "--batch", "3")
    _assert_exactly_once(endpoint, 5)
    assert set(InferenceRecord.objects.values_list("status", flat=True)) == {"ok"}


# --- crashes, with real processes on PostgreSQL ---------------------------------------------

def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": _database_url(), "PYTHONUNBUFFERED": "1", "AUDIT_INGEST_GROUP_COMMIT": "true", **extra})
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(tmp_path, client):
    endpoint = monitored_endpoint()
    calls = 300
    for n in range(calls):
        for delivery in samples.logger_call(endpoint, n):
            buffer.buffer_append(project=endpoint.project, content_type=delivery.content_type, body=delivery.body,
                                 headers={k[len("HTTP_CE_"):].lower(): v for k, v in delivery.headers.items()})
    marker = tmp_path / "stalled"
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "ingest_worker", "--batch", "100"], cwd=ROOT, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        env=_env(DJANGO_SETTINGS_MODULE="tests.audit.crash_settings", CRASH_TEST_MARKER=str(marker),
                 CRASH_TEST_STALL_AT="2"))
    try:
        # The second batch hangs inside its transaction (its consumers run): kill -9 there.
        _wait(marker.exists, 60, f"the worker to stall mid-batch:\n{(tmp_path / 'worker.log').read_text()}")
        _kill(worker)
    finally:
        _kill(worker)
        log.close()
    # The first batch committed (records and deletion together); the second rolled back whole.
    assert buffer.buffer_depth() == 2 * calls - 100
    assert InferenceRecord.objects.filter(endpoint=endpoint).count() == 50
    # Another worker takes everything left, the interrupted batch included.
    call_command("ingest_worker", "--once")
    _assert_exactly_once(endpoint, calls)
    sealing.seal_pending()
    assert verify().ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_headers(delivery) -> dict:
    headers = {"Content-Type": delivery.content_type}
    for key, value in delivery.headers.items():
        headers["-".join(part.capitalize() for part in key[len("HTTP_"):].split("_"))] = value
    return headers


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_web_process_killed_right_after_a_202_loses_nothing_acknowledged(tmp_path):
    endpoint = monitored_endpoint()
    port = _free_port()
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 - closed below
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "console.wsgi", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--workers", "1", "--threads", "4", "--keep-alive", "30"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env=_env(DJANGO_SETTINGS_MODULE="tests.settings"))
    acknowledged = []
    path = reverse("ingest:kserve", kwargs={"ingest_key": endpoint.project.ingest_key})
    deliveries = [(n, d) for n in range(120) for d in samples.logger_call(endpoint, n)]
    try:
        def answering():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        _wait(answering, 60, "gunicorn to listen")
        connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # one keep-alive connection
        for n, delivery in deliveries:
            connection_.request("POST", path, body=delivery.body, headers=_http_headers(delivery))
            response = connection_.getresponse()
            response.read()
            assert response.status == 202, response.status
            acknowledged.append(n)
            if len(acknowledged) == len(deliveries):
                _kill(web)  # right after the last 202
    finally:
        _kill(web)
        log.close()
    assert buffer.buffer_depth() == len(deliveries)
    buffer.buffer_drain()
    _assert_exactly_once(endpoint, 120)
    # The loggers send everything again (same CloudEvents ids): nothing is added.
    for _, delivery in deliveries:
        buffer.buffer_append(project=endpoint.project, content_type=delivery.content_type, body=delivery.body,
                             headers={k[len("HTTP_CE_"):].lower(): v for k, v in delivery.headers.items()})
    assert buffer.buffer_drain()["duplicates"] == len(deliveries)
    _assert_exactly_once(endpoint, 120)
    sealing.seal_pending()
    assert verify().ok


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_receiver_process_killed_right_after_a_202_loses_nothing_acknowledged(tmp_path):
    from tests.audit import receiver_process as rp

    endpoint = monitored_endpoint()
    receiver, port = rp.start_receiver(tmp_path, threads=4)
    path = reverse("ingest:kserve", kwargs={"ingest_key": endpoint.project.ingest_key})
    deliveries = [(n, d) for n in range(120) for d in samples.logger_call(endpoint, n)]
    acknowledged = 0
    try:
        connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # one keep-alive connection
        for _, delivery in deliveries:
            connection_.request("POST", path, body=delivery.body, headers=_http_headers(delivery))
            response = connection_.getresponse()
            response.read()
            assert response.status == 202, response.status
            acknowledged += 1
            if acknowledged == len(deliveries):
                _kill(receiver)  # right after the last 202
    finally:
        _kill(receiver)
    assert buffer.buffer_depth() == len(deliveries)
    buffer.buffer_drain()
    _assert_exactly_once(endpoint, 120)
    sealing.seal_pending()
    assert verify().ok
