"""The filesystem broker `make run` uses without Redis: a message file is complete the moment a
consumer can see it (kombu's own channel creates it empty, then writes; a worker that took it
in between died with JSONDecodeError)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from console import broker


@pytest.fixture
def folders(tmp_path):
    for name in ("queue", "processed"):
        (tmp_path / name).mkdir()
    return {"data_folder_in": str(tmp_path / "queue"), "data_folder_out": str(tmp_path / "queue"),
            "processed_folder": str(tmp_path / "processed"), "store_processed": False}


def test_messages_round_trip_through_the_atomic_channel(folders):
    with Connection("filesystem://", transport="console.broker:Transport", transport_options=folders) as conn:
        queue = conn.SimpleQueue("celery")
        for number in range(20):
            queue.put({"n": number})
        # Ordered by the millisecond of writing (as kombu's own channel does), so compare sets.
        assert sorted(queue.get(timeout=1).payload["n"] for _ in range(20)) == list(range(20))
        queue.close()


def test_no_message_file_is_visible_until_it_is_complete(folders, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(source, target):
        # At the moment before the rename, a consumer listing the folder finds no message.
        seen.append(sorted(name for name in os.listdir(folders["data_folder_in"]) if name.endswith(".msg")))
        with open(source, "rb") as handle:
            assert handle.read(), "the temporary file holds the whole message before it is renamed"
        real_replace(source, target)

    monkeypatch.setattr(broker.os, "replace", replace)
    with Connection("filesystem://", transport="console.broker:Transport", transport_options=folders) as conn:
        queue = conn.SimpleQueue("celery")
        queue.put({"n": 1})
        assert seen == [[]]
        assert queue.get(timeout=1).payload == {"n": 1}
        queue.close()
    assert not [name for name in os.listdir(folders["data_folder_in"]) if name.endswith(".part")]


def test_make_run_settings_select_the_atomic_transport(tmp_path):
    # Settings as `make run` has them (no REDIS_URL), read in a fresh process.
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DJANGO_SETTINGS_MODULE="console.settings", DEBUG="true", SECRET_KEY="x" * 50,
               CONSOLE_VAR_DIR=str(tmp_path))
    code = "import django; django.setup(); from console.celery import app; print(app.conf.broker_transport)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2], check=True)
    assert result.stdout.strip().splitlines()[-1] == "console.broker:Transport"
