"""gunicorn settings module (``gunicorn -c python:console.gunicorn_conf``): tells the
Prometheus multiprocess collector when a worker exits (``console/metrics.py``)."""

from __future__ import annotations


def child_exit(server, worker):
    from console.metrics import mark_process_dead

    mark_process_dead(worker.pid)
