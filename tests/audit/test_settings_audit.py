"""Audit settings: the signing key is required in production, may come from a file, and
retired keys are kept for verification."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "import console.settings as s; print(s.AUDIT_SIGNING_KEY_ID, sorted(s.AUDIT_SIGNING_KEYS.items()))"


def _settings(**env):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("AUDIT_") and k not in {"DEBUG", "PYTEST_CURRENT_TEST"}}
    clean.update({"SECRET_KEY": "x" * 50}, **env)
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=clean, capture_output=True, text=True,
                          timeout=60)


def test_start_up_fails_without_a_signing_key_when_debug_is_off():
    result = _settings(DEBUG="false")
    assert result.returncode != 0
    assert "AUDIT_SIGNING_KEY is required" in result.stderr


def test_signing_key_from_a_file_and_retired_keys(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("current-key\n")
    result = _settings(DEBUG="false", AUDIT_SIGNING_KEY_FILE=str(key_file), AUDIT_SIGNING_KEY_ID="k2",
                       AUDIT_SIGNING_KEYS="k1=old-key")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "k2 [('k1', 'old-key'), ('k2', 'current-key')]"


def test_malformed_retired_keys_stop_start_up():
    result = _settings(DEBUG="true", AUDIT_SIGNING_KEYS="k1")
    assert result.returncode != 0
    assert "AUDIT_SIGNING_KEYS must look like" in result.stderr


def test_beat_runs_the_sealer_sweeps_and_retention():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"audit.tasks.seal_events_task", "audit.tasks.retry_ingest_batches_task",
            "audit.tasks.sweep_inference_pairs_task", "audit.tasks.archive_and_prune_task"} <= tasks
    assert settings.INFERENCE_EVENT_CONSUMERS[0] == "audit.consumers.record_inference_io"
