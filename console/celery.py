"""The Celery application and the reliability policy every task follows.

Policy (settings hold the numbers): JSON only; prefetch 1; soft time limit < hard time limit
< broker visibility timeout. Idempotent tasks are declared with ``idempotent_task`` and get
``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies is delivered again, which
is only safe because running it twice converges to the same state. Everything else keeps
the default early ack. Enqueue after commit with ``task.delay_on_commit(...)`` (Celery's
Django task class) so a worker never looks for a row that is not committed yet.
"""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    task_postrun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def _verify_encryption_keys(**_kwargs) -> None:
    """A worker or beat with keys that cannot read the stored secrets must not start."""
    from console.crypto import verify_keys

    verify_keys()


@worker_ready.connect
def _serve_worker_metrics(**_kwargs) -> None:
    """WORKER_METRICS_PORT set (Kubernetes: the worker pods' scrape port): serve /metrics here."""
    from django.conf import settings

    from console.metrics import serve_worker_metrics

    if settings.WORKER_METRICS_PORT:
        serve_worker_metrics(settings.WORKER_METRICS_PORT)


@worker_init.connect
def _fresh_metrics_dir(**_kwargs) -> None:
    """Only the worker's own pod writes here (an emptyDir): start from nothing, before the pool forks.
    Under ``make run`` the directory is shared with gunicorn, whose master empties it instead."""
    from django.conf import settings

    from console.metrics import clear_multiprocess_dir

    if settings.WORKER_METRICS_PORT:
        clear_multiprocess_dir()


@before_task_publish.connect
def _stamp_sent_at(headers=None, **_kwargs) -> None:
    """When the message was queued: /metrics reports the oldest queued message's age from it."""
    if headers is not None:
        headers.setdefault("console_sent_at", time.time())


@task_postrun.connect
def _heartbeat(**_kwargs) -> None:
    from console.metrics import WORKER_HEARTBEAT

    WORKER_HEARTBEAT.set(time.time())


@worker_process_shutdown.connect
def _mark_dead(**_kwargs) -> None:
    from console.metrics import mark_process_dead

    mark_process_dead(os.getpid())


def idempotent_task(*args, **options):
    """``app.task`` for tasks that are safe to run twice or concurrently."""
    options.setdefault("acks_late", True)
    options.setdefault("reject_on_worker_lost", True)
    return app.task(*args, **options)
