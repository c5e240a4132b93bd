"""gunicorn settings module (``gunicorn -c python:console.gunicorn_conf …``) for the
Prometheus multiprocess mode (``console/metrics.py``): the directory named by
``PROMETHEUS_MULTIPROC_DIR`` is created and emptied when the master starts (values left by an
earlier run would be added to this one's), and a worker's live gauges are dropped when it exits."""

from __future__ import annotations

import os
from pathlib import Path


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    from console.metrics import mark_process_dead

    mark_process_dead(worker.pid)
