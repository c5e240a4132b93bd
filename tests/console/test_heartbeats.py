"""Worker and beat liveness that cannot lie (issue #25): heartbeats that only work done can
produce, reported by /readyz, the admin overview and /metrics, read by the probes and by
`make run`'s watchdog."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console import liveness
from console.heartbeats import record
from console.models import Heartbeat

pytestmark = pytest.mark.django_db


# --- the per-host files (probes, watchdog) ----------------------------------------------------

def test_a_worker_that_answers_its_heartbeats_is_alive(tmp_path):
    liveness.reset(tmp_path)
    sent = time.time()
    liveness.mark_sent(tmp_path, sent)
    liveness.mark_done(tmp_path)
    assert liveness.check_worker(tmp_path, limit=30, now=sent + 100)[0] is False  # main loop silent 100 s
    liveness.mark_sent(tmp_path, sent)
    assert liveness.check_worker(tmp_path, limit=30) == (True, "ok")


def test_a_heartbeat_pending_beyond_the_limit_with_no_task_done_is_a_wedged_pool(tmp_path):
    liveness.reset(tmp_path)
    liveness.mark_done(tmp_path)
    last_done = time.time() - 100
    os.utime(tmp_path / liveness.DONE, (last_done, last_done))
    liveness.mark_sent(tmp_path, time.time() - 31)  # published after the last task finished, never answered
    ok, reason = liveness.check_worker(tmp_path, limit=30)
    assert ok is False and "wedged" in reason
    # Within the limit it is a busy pool, not a wedged one.
    liveness.mark_sent(tmp_path, time.time() - 29)
    assert liveness.check_worker(tmp_path, limit=30)[0] is True


def test_nothing_pending_is_alive_and_readiness_waits_for_a_finished_task(tmp_path):
    liveness.reset(tmp_path)
    assert liveness.check_worker(tmp_path, limit=30)[0] is True
    assert liveness.check_worker(tmp_path, limit=30, ready=True) == (False, "no pool process has finished a task yet")
    liveness.mark_done(tmp_path)
    assert liveness.check_worker(tmp_path, limit=30, ready=True)[0] is True


def test_beat_is_alive_while_it_schedules(tmp_path):
    assert liveness.check_beat(tmp_path, limit=60)[0] is False
    liveness.mark_beat(tmp_path)
    assert liveness.check_beat(tmp_path, limit=60)[0] is True
    assert liveness.check_beat(tmp_path, limit=60, now=time.time() + 61)[0] is False


def test_the_probe_command_exits_non_zero_with_the_reason(tmp_path):
    probe = [sys.executable, "-m", "console.liveness", "worker", "--dir", str(tmp_path)]
    missing = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no heartbeat file" in missing.stderr
    liveness.reset(tmp_path)
    alive = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert alive.returncode == 0, alive.stderr
    assert "RuntimeWarning" not in alive.stderr


# --- /readyz, overview, /metrics ---------------------------------------------------------------

def test_readyz_is_503_naming_worker_and_beat_before_any_heartbeat(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["worker", "beat"]
    assert "no heartbeat yet" in body["checks"]["worker"]
    assert body["heartbeats"]["worker"]["age_seconds"] is None


def test_readyz_reports_a_stale_worker_with_its_age(client, settings):
    record(component="worker", name="celery@host-a")
    record(component="beat", name="host-b:7")
    assert client.get("/readyz").status_code == 200
    Heartbeat.objects.filter(component="worker").update(last_seen_at=timezone.now() - timedelta(seconds=900))

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["worker"]
    assert "last heartbeat 900 s ago, from celery@host-a" in body["checks"]["worker"]
    assert 899 < body["heartbeats"]["worker"]["age_seconds"] < 960


def test_readyz_limited_to_serving_checks_ignores_the_heartbeats(client):
    response = client.get("/readyz?check=database&check=broker")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert client.get("/readyz?check=nonsense").status_code == 400


def test_admin_overview_shows_each_heartbeat_and_a_stale_one_as_such(client, admin_user):
    record(component="beat", name="host-b:7")
    record(component="worker", name="celery@host-a")
    Heartbeat.objects.filter(component="worker").update(last_seen_at=timezone.now() - timedelta(seconds=600))
    client.force_login(admin_user)
    page = client.get(reverse("portal:admin-overview")).content.decode()
    assert "Celery worker" in page and "Celery beat" in page
    assert "stale: last heartbeat 600 s ago, from celery@host-a" in page


def test_metrics_report_each_components_heartbeat_age(client):
    record(component="worker", name="celery@host-a")
    Heartbeat.objects.filter(component="worker").update(last_seen_at=timezone.now() - timedelta(seconds=42))
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    line = next(row for row in text.splitlines() if row.startswith('console_heartbeat_age_seconds{component="worker"}'))
    assert 41 < float(line.split()[-1]) < 100
    assert 'console_heartbeat_alive_processes{component="beat"} 0.0' in text


def test_the_heartbeat_task_records_the_worker_that_ran_it():
    from console.tasks import worker_heartbeat_task

    worker_heartbeat_task.apply(headers={"hostname": "celery@host-z"}, hostname="celery@host-z")
    assert Heartbeat.objects.filter(component="worker").exists()


# --- make run's watchdog ------------------------------------------------------------------------

def test_make_runs_watchdog_restarts_a_worker_whose_heartbeat_stopped(tmp_path, monkeypatch):
    from console.portal import devstack

    stack = devstack.Stack(env={"PATH": "/usr/bin:/bin"})
    stack.start("worker", ["sleep", "600"])
    first = stack.children["worker"].pid
    try:
        watchdog = devstack.WorkerWatchdog(stack, tmp_path, limit=5)
        watchdog.started -= 10  # past its start-up grace
        liveness.reset(tmp_path)
        liveness.mark_done(tmp_path)
        assert watchdog.check() is False  # nothing pending: alive

        liveness.mark_sent(tmp_path, time.time() - 6)  # a heartbeat waiting 6 s, nothing done since
        os.utime(tmp_path / liveness.DONE, (time.time() - 10, time.time() - 10))
        watchdog.next_check = 0.0
        assert watchdog.check() is True
        assert stack.children["worker"].pid != first
        assert stack.children["worker"].poll() is None
    finally:
        stack.stop()


def test_rows_of_processes_gone_for_a_week_are_forgotten_when_a_new_one_reports():
    record(component="worker", name="celery@old-pod")
    Heartbeat.objects.update(last_seen_at=timezone.now() - timedelta(days=8))
    record(component="worker", name="celery@new-pod")
    assert list(Heartbeat.objects.values_list("name", flat=True)) == ["celery@new-pod"]
