"""The Celery application and the reliability policy every task follows.

Policy (settings hold the numbers): JSON only; prefetch 1; soft time limit < hard time limit
< broker visibility timeout. Idempotent tasks are declared with ``idempotent_task`` and get
``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies is delivered again, which
is only safe because running it twice converges to the same state. Everything else keeps
the default early ack. Enqueue after commit with ``task.delay_on_commit(...)`` so a worker
never looks for a row that is not committed yet.

Broker down after the commit: the change is saved, so the request must not fail (a 500 after
a commit makes a client retry a change that was made). ``delay_on_commit`` here catches the
failed publish, logs and counts it (``console_task_enqueue_failures_total``) and notes it for
the request, which then answers success with "queued; the periodic pass will apply it"
(``console.middleware.QueuedWorkMiddleware``). Every task enqueued this way has a periodic
pass that finds its work from the database (reconcile pass, ingest retry, notification
sweep), so nothing is lost; it only waits for the next pass.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from contextvars import ContextVar

from celery import Celery
from celery.contrib.django.task import DjangoTask
from celery.signals import (
    beat_init,
    before_task_publish,
    task_postrun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
logger = logging.getLogger(__name__)

# Tasks of the current request that could not be published (None outside a request).
_not_published: ContextVar[list[str] | None] = ContextVar("console_tasks_not_published", default=None)


def track_unpublished() -> object:
    """Start noting the tasks this request fails to publish; returns the token for ``untrack``."""
    return _not_published.set([])


def untrack_unpublished(token) -> list[str]:
    """Stop noting; returns the names of the tasks that could not be published."""
    names = _not_published.get() or []
    _not_published.reset(token)
    return names


class ConsoleTask(DjangoTask):
    """Celery's Django task, whose ``*_on_commit`` never fails the committed request."""

    def delay_on_commit(self, *args, **kwargs) -> None:
        from django.db import transaction

        transaction.on_commit(functools.partial(self._publish_after_commit, args, kwargs, {}))

    def apply_async_on_commit(self, args=None, kwargs=None, **options) -> None:
        from django.db import transaction

        transaction.on_commit(functools.partial(self._publish_after_commit, args or (), kwargs or {}, options))

    def _publish_after_commit(self, args, kwargs, options) -> None:
        try:
            self.apply_async(args, kwargs, **options)
        except Exception:  # noqa: BLE001 - the broker is down or refuses: the periodic pass applies it
            from console.metrics import TASK_ENQUEUE_FAILURES

            logger.warning("could not publish %s after commit; the periodic pass will do its work", self.name,
                           exc_info=True)
            TASK_ENQUEUE_FAILURES.labels(self.name).inc()
            names = _not_published.get()
            if names is not None:
                names.append(self.name)


app = Celery("console", task_cls=ConsoleTask)
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
