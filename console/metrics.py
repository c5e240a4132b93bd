"""The console's own Prometheus metrics and ``/metrics`` (``docs/signals.md``).

Metrics are defined here, in the framework, so every layer can count without importing
another: the reconciler, the ingest receivers and workers, inference authorization. With
``PROMETHEUS_MULTIPROC_DIR`` set (before any process starts) prometheus_client's
multiprocess mode writes each process's values to files in that directory, and ``/metrics``
adds them up: gunicorn's workers and the Celery worker on the same host report together.
gunicorn's ``child_exit`` (``console/gunicorn_conf.py``) and Celery's
``worker_process_shutdown`` mark dead processes. The directory must be empty when the
processes start (an ``emptyDir`` in Kubernetes; ``make run`` creates a fresh one).

Values that are read rather than counted — queue depth and the oldest message's age, drift
alerts per endpoint, the age of the last worker heartbeat, open reconciler alerts — are
computed when ``/metrics`` is scraped, by collectors the apps register at start-up
(``register_collector``), each a function returning metric families.

``/metrics`` is answered by ``MetricsMiddleware`` before sessions, CSRF and host validation
(Prometheus scrapes a pod by its IP address, not one of ``ALLOWED_HOSTS``), is never
throttled, and is protected: with ``METRICS_TOKEN`` set it needs ``Authorization: Bearer
<token>`` (compared in constant time); without one it answers loopback clients only.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"

RECONCILE_PASSES = Counter("console_reconcile_passes_total", "Reconcile passes over a cluster.", ["cluster"])
RECONCILE_PASS_ERRORS = Counter(
    "console_reconcile_pass_errors_total", "Errors met by reconcile passes (a namespace not listed, an apply "
    "refused or failed, an orphan not deleted).", ["cluster"])
PERIODIC_PASS_FAILURES = Counter(
    "console_periodic_pass_failures_total", "A periodic pass that failed on one cluster and went on with the "
    "others (each is that cluster's reconciler alert).", ["cluster", "kind"])
RECONCILE_APPLIES = Counter(
    "console_reconcile_applies_total", "Applies of an endpoint's generation to its cluster, by result "
    "(applied, failed: refused by the API server, error: transient, retried).", ["cluster", "result"])
RECONCILE_PASS_SECONDS = Histogram(
    "console_reconcile_pass_duration_seconds", "Duration of a reconcile pass over a cluster.", ["cluster"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
INGEST_RECEIVED = Counter("console_ingest_received_total", "Ingest deliveries accepted (202), by source.",
                          ["source"])
INGEST_REFUSED = Counter("console_ingest_refused_total", "Ingest deliveries refused, by source and HTTP status.",
                         ["source", "status"])
INGEST_PROCESSED = Counter("console_ingest_processed_total", "Ingest batches processed by workers, by outcome.",
                           ["source", "outcome"])
INGEST_LAG = Histogram(
    "console_ingest_lag_seconds", "Time from an ingest batch's receipt to the end of its processing.", ["source"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
AUTHZ_DECISIONS = Counter("console_authz_decisions_total", "Inference authorization decisions, by outcome "
                          "(allow, deny: 403, unauthenticated: 401, unavailable: 503 when an allow could not be "
                          "recorded).", ["outcome"])
AUTHZ_SECONDS = Histogram("console_authz_decision_seconds", "Time to answer an inference authorization check.",
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
AUTHZ_ALLOWS_SHIPPED = Counter("console_authz_allows_shipped_total", "Allowed checks shipped from the authorizers' "
                               "allow journals into the database.")
AUTHZ_ALLOW_JOURNAL_BACKLOG = Gauge("console_authz_allow_journal_backlog_bytes", "Allow journal bytes written and "
                                    "not yet shipped into the database (a shipper that cannot reach the database "
                                    "shows here).", multiprocess_mode="livesum")
IDENTITY_RECHECKS = Counter("console_identity_rechecks_total", "Re-checks of signed-in people at their identity "
                            "provider, by source and outcome (ok, refused, unreachable).", ["source", "outcome"])
TASK_ENQUEUE_FAILURES = Counter(
    "console_task_enqueue_failures_total", "Tasks that could not be published after their change was committed "
    "(broker down); the periodic passes do their work.", ["task"])
WORKER_HEARTBEAT = Gauge(
    "console_worker_heartbeat_timestamp_seconds", "When a Celery worker last finished a task (Unix time; the "
    "heartbeat task runs every 15 s).", multiprocess_mode="max")

_collectors: list[Callable[[], Iterable]] = []


def register_collector(collect: Callable[[], Iterable]) -> None:
    """Add a scrape-time collector (an app's ``AppConfig.ready``): a function yielding metric
    families. It must be cheap (a few indexed queries) and never raise for long."""
    if collect not in _collectors:
        _collectors.append(collect)


class _ScrapeTimeCollector(Collector):
    def collect(self):
        for collect in _collectors:
            try:
                yield from collect()
            except Exception:  # one broken source must not take the whole scrape down
                logger.exception("metrics collector %s failed", getattr(collect, "__name__", collect))


def heartbeat_age_family(registry_values: dict[str, float]):
    family = GaugeMetricFamily("console_worker_heartbeat_age_seconds",
                               "Seconds since a Celery worker last finished a task (absent: none yet).")
    last = registry_values.get("console_worker_heartbeat_timestamp_seconds")
    if last:
        family.add_metric([], max(0.0, time.time() - last))
    return family


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render() -> bytes:
    """The exposition text: counted metrics (every process's, in multiprocess mode) and the
    scrape-time collectors."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    counted = generate_latest(registry)
    heartbeat = {}
    for family in registry.collect():
        if family.name == "console_worker_heartbeat_timestamp_seconds":
            heartbeat = {family.name: max((s.value for s in family.samples), default=0.0)}
    extra = CollectorRegistry()
    extra.register(_ScrapeTimeCollector())
    extra_text = generate_latest(extra)
    age = CollectorRegistry()

    class _Age(Collector):
        def collect(self):
            yield heartbeat_age_family(heartbeat)

    age.register(_Age())
    return counted + extra_text + generate_latest(age)


def _authorized(request) -> bool:
    return scrape_allowed(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_AUTHORIZATION", ""))


def scrape_allowed(remote_addr: str, authorization: str) -> bool:
    """``METRICS_TOKEN`` as a bearer token (constant-time compare), or loopback only without one."""
    token = settings.METRICS_TOKEN
    if not token:
        return remote_addr in ("127.0.0.1", "::1")
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics_response(request) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not _authorized(request):
        return HttpResponse("Forbidden: send Authorization: Bearer <METRICS_TOKEN>.\n", status=403,
                            content_type="text/plain")
    response = HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


class MetricsMiddleware:
    """Answers ``/metrics`` before sessions, CSRF and host validation (and every API throttle)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == METRICS_PATH:
            return metrics_response(request)
        return self.get_response(request)


def mark_process_dead(pid: int) -> None:
    """A gunicorn worker or Celery child exited: drop its live gauges (multiprocess mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def task_queue_families():
    """Depth of each Celery queue and, on Redis, the age of its oldest message (from the
    ``console_sent_at`` header every message gets when it is published)."""
    import json

    from console.celery import app

    depth = GaugeMetricFamily("console_task_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
    oldest = GaugeMetricFamily("console_task_queue_oldest_age_seconds",
                               "Age of the oldest message waiting in a Celery queue (Redis broker only).",
                               labels=["queue"])
    now = time.time()
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        client = getattr(channel, "client", None)
        for queue in app.conf.task_queues or ():
            name = queue.name
            if client is not None and hasattr(client, "llen"):
                count = client.llen(name)  # a queue no worker declared yet is simply empty
            else:
                try:
                    count = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:  # not declared yet (filesystem broker): nothing queued
                    count = 0
            depth.add_metric([name], count)
            if client is not None and count and hasattr(client, "lindex"):
                raw = client.lindex(name, -1)  # kombu's Redis transport pushes left, pops right
                sent = (json.loads(raw).get("headers") or {}).get("console_sent_at") if raw else None
                if sent:
                    oldest.add_metric([name], max(0.0, now - float(sent)))
            elif not count:
                oldest.add_metric([name], 0.0)
    yield depth
    yield oldest


# --- the worker's own endpoint ------------------------------------------------------------------
# In Kubernetes the Celery worker runs in its own pods: what its processes count (reconciles,
# applies, ingest processing, heartbeats) cannot reach the web pods' /metrics. With
# WORKER_METRICS_PORT set, the worker's main process serves the same exposition (its pool
# children's values included, through PROMETHEUS_MULTIPROC_DIR) on that port, behind the same
# token rule. Plain WSGI on a daemon thread: no Django request machinery for a scrape.


def _worker_metrics_app(environ, start_response):
    if environ.get("PATH_INFO") != METRICS_PATH:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not found: scrape /metrics.\n"]
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
        return [b""]
    if not scrape_allowed(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION", "")):
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"Forbidden: send Authorization: Bearer <METRICS_TOKEN>.\n"]
    body = render()
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Cache-Control", "no-store"),
                              ("Content-Length", str(len(body)))])
    return [body] if environ.get("REQUEST_METHOD") == "GET" else [b""]


def serve_worker_metrics(port: int, host: str = "0.0.0.0"):  # noqa: S104 - a pod port, guarded by the token
    """Start the worker's /metrics server on a daemon thread; returns the server (``.server_port``)."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Handler(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - scrapes are not worth a log line each
            pass

    class Server(WSGIServer):
        daemon_threads = True

    server = make_server(host, port, _worker_metrics_app, server_class=Server, handler_class=Handler)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    return server


def clear_multiprocess_dir() -> None:
    """Values left in PROMETHEUS_MULTIPROC_DIR by an earlier run would be added to this one's."""
    directory = multiprocess_dir()
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
