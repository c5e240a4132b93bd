"""Settings read from the environment fail loudly on bad or missing production values."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _import_settings(**env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "PYTEST_CURRENT_TEST"}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import console.settings as s; print(s.SECRET_KEY[:6], s.DEBUG)"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60,
    )


def test_start_up_fails_without_secret_key_when_debug_is_off():
    result = _import_settings(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-file-secret-value\n")
    result = _import_settings(DEBUG="false", SECRET_KEY_FILE=str(secret), AUDIT_SIGNING_KEY="audit-key")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-f", "False"]


def test_a_malformed_boolean_stops_start_up_naming_the_variable():
    result = _import_settings(DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_celery_limits_must_be_ordered():
    result = _import_settings(DEBUG="true", CELERY_TASK_TIME_LIMIT="10", CELERY_TASK_SOFT_TIME_LIMIT="20")
    assert result.returncode != 0
    assert "CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT" in result.stderr


def test_log_intake_has_its_own_queue_and_a_plain_worker_consumes_both():
    """A burst of payload-logger batches must not sit in front of reconciles: intake goes to
    the "ingest" queue, everything else to "celery", and a worker started without -Q (as
    `make run` and the manifests start it) consumes both."""
    from console.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    assert queue_of("audit.tasks.process_ingest_batch_task") == "ingest"
    for task in ("endpoints.tasks.reconcile_endpoint_task", "endpoints.tasks.reconcile_all_task",
                 "endpoints.tasks.sync_endpoint_status_task", "audit.tasks.seal_events_task"):
        assert queue_of(task) == "celery"
    assert {queue.name for queue in app.amqp.queues.values()} == {"celery", "ingest"}
