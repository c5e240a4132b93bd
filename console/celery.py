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
import socket
import time
from contextvars import ContextVar
from pathlib import Path

from celery import Celery, bootsteps
from celery.contrib.django.task import DjangoTask
from celery.signals import (
    beat_init,
    before_task_publish,
    celeryd_after_setup,
    task_postrun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)

# console.liveness is imported inside the functions: ``python -m console.liveness`` (the probes)
# imports this package first, and must find that module not yet imported.

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
        if self.app.conf.task_always_eager:  # runs here and now: its own errors are not the broker's
            self.apply_async(args, kwargs, **options)
            return
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
    """A pool process finished a task: the worker consumes (console/liveness.py)."""
    from django.conf import settings

    from console import liveness
    from console.metrics import WORKER_HEARTBEAT

    WORKER_HEARTBEAT.set(time.time())
    try:
        liveness.mark_done(Path(settings.HEARTBEAT_DIR))
    except OSError:
        logger.warning("cannot write the worker's heartbeat file in %s", settings.HEARTBEAT_DIR, exc_info=True)


# --- worker heartbeat through a queue of its own ----------------------------------------------

def heartbeat_queue(hostname: str) -> str:
    return f"heartbeat.{hostname}"


@celeryd_after_setup.connect
def _consume_own_heartbeat_queue(sender, instance, **_kwargs) -> None:
    """Each worker also consumes ``heartbeat.<its node name>``, where only it sends."""
    instance.app.amqp.queues.select_add(heartbeat_queue(sender))


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Every ``WORKER_HEARTBEAT_SECONDS`` the worker's main process sends ``worker_heartbeat_task``
    to its own queue and records in its liveness file since when a heartbeat has been waiting.
    Runs on the worker's timer (the event loop's, in the main thread): no thread of its own is
    alive when the pool forks a replacement process, so none can hold a lock the child inherits."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timer_entry = None
        self.oldest_pending = 0.0
        self.directory = Path(".")
        self.queue = ""

    def start(self, worker) -> None:
        from django.conf import settings

        from console import liveness

        self.directory = Path(settings.HEARTBEAT_DIR)
        self.queue = heartbeat_queue(worker.hostname)
        liveness.reset(self.directory)
        self.timer_entry = worker.timer.call_repeatedly(liveness.WORKER_HEARTBEAT_SECONDS, self.tick, priority=10)

    def stop(self, worker) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def tick(self) -> None:
        from console import liveness
        from console.tasks import worker_heartbeat_task

        now = time.time()
        if not self.oldest_pending or liveness.done_at(self.directory) >= self.oldest_pending:
            self.oldest_pending = now
        try:
            # Through the app's producer pool: the timer runs in the main thread, the thread
            # that forks pool processes, so no fork can happen while a pool lock is held.
            worker_heartbeat_task.apply_async(queue=self.queue, retry=False, expires=liveness.default_worker_limit())
        except Exception:  # noqa: BLE001 - broker down: /readyz names it; nothing is pending here
            logger.warning("could not send the worker heartbeat", exc_info=True)
            self.oldest_pending = 0.0
        try:
            liveness.mark_sent(self.directory, self.oldest_pending)
        except OSError:
            logger.warning("cannot write the worker's heartbeat file in %s", self.directory, exc_info=True)


# --- beat's heartbeat -----------------------------------------------------------------------------
_beat = {"running": False, "recorded": 0.0}
BEAT_RECORD_SECONDS = 5.0


@beat_init.connect
def _beat_started(**_kwargs) -> None:
    _beat["running"] = True


@before_task_publish.connect
def _beat_heartbeat(**_kwargs) -> None:
    """Beat scheduled a task: its liveness file, and at most every few seconds its row."""
    if not _beat["running"]:
        return
    from django.conf import settings

    from console import liveness

    try:
        liveness.mark_beat(Path(settings.HEARTBEAT_DIR))
    except OSError:
        logger.warning("cannot write beat's heartbeat file in %s", settings.HEARTBEAT_DIR, exc_info=True)
    now = time.monotonic()
    if now - _beat["recorded"] < BEAT_RECORD_SECONDS:
        return
    _beat["recorded"] = now
    from django.db import close_old_connections

    from console.heartbeats import record
    from console.models import Heartbeat

    try:
        close_old_connections()
        record(component=Heartbeat.Component.BEAT, name=f"{socket.gethostname()}:{os.getpid()}")
    except Exception:  # noqa: BLE001 - the database is down: the file still says beat runs
        logger.warning("could not record beat's heartbeat", exc_info=True)


@worker_process_shutdown.connect
def _mark_dead(**_kwargs) -> None:
    from console.metrics import mark_process_dead

    mark_process_dead(os.getpid())


def idempotent_task(*args, **options):
    """``app.task`` for tasks that are safe to run twice or concurrently."""
    options.setdefault("acks_late", True)
    options.setdefault("reject_on_worker_lost", True)
    return app.task(*args, **options)


app.steps["worker"].add(WorkerHeartbeat)
