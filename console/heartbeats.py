"""Heartbeats of the Celery worker and beat in the database, where every web process reads them.

A worker's heartbeat is written by a pool process when it runs ``worker_heartbeat_task`` —
sent by beat every 15 s through the shared queue and by each worker to its own queue every
``WORKER_HEARTBEAT_SECONDS`` (``console/celery.py``) — so it proves the worker *consumes*,
not only that its process runs. Beat's is written whenever beat publishes a task. Ages are
reported by ``/readyz`` (``console/health.py``), the admin overview and ``/metrics``
(``console_heartbeat_age_seconds``). The per-host files of ``console/liveness.py`` are the
other half: they serve the Kubernetes probes and ``make run``'s watchdog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from console.models import Heartbeat

# Rows of processes gone this long are removed (Kubernetes names every new pod anew).
FORGET_AFTER = timedelta(days=7)


def record(*, component: str, name: str) -> None:
    """The process ``name`` of ``component`` is alive now (one row per process, upserted); rows
    of processes silent for ``FORGET_AFTER`` are removed when a new process first reports."""
    now = timezone.now()
    if not Heartbeat.objects.filter(component=component, name=name[:200]).update(last_seen_at=now):
        Heartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()
        Heartbeat.objects.update_or_create(component=component, name=name[:200], defaults={"last_seen_at": now})


@dataclass(frozen=True)
class Reading:
    """The freshest heartbeat of a component and what it means."""

    component: str
    limit: float
    age: float | None  # seconds; None: never seen
    name: str = ""
    alive_count: int = 0  # processes seen within the limit

    @property
    def ok(self) -> bool:
        return self.age is not None and self.age <= self.limit

    @property
    def text(self) -> str:
        if self.age is None:
            return f"no heartbeat yet (is a {self.component} running?)"
        if self.ok:
            return "ok"
        return f"stale: last heartbeat {self.age:.0f} s ago, from {self.name} (limit {self.limit:.0f} s)"


def limits() -> dict[str, float]:
    return {Heartbeat.Component.WORKER: float(settings.WORKER_HEARTBEAT_MAX_AGE),
            Heartbeat.Component.BEAT: float(settings.BEAT_HEARTBEAT_MAX_AGE)}


def readings() -> dict[str, Reading]:
    """The worker's and beat's freshest heartbeat (one query)."""
    now = timezone.now()
    rows = list(Heartbeat.objects.order_by("component", "-last_seen_at").values_list(
        "component", "name", "last_seen_at"))
    result = {}
    for component, limit in limits().items():
        seen = [(name, (now - at).total_seconds()) for kind, name, at in rows if kind == component]
        if not seen:
            result[component] = Reading(component, limit, None)
            continue
        name, age = seen[0]
        result[component] = Reading(component, limit, max(0.0, age), name,
                                    sum(1 for _name, other in seen if other <= limit))
    return result


def metric_families():
    """``console_heartbeat_age_seconds{component}`` and the processes alive, for ``/metrics``."""
    from prometheus_client.core import GaugeMetricFamily

    age = GaugeMetricFamily("console_heartbeat_age_seconds",
                            "Seconds since the freshest heartbeat of the Celery worker (a heartbeat task a pool "
                            "process ran) or of beat (a task it scheduled); absent: never seen.",
                            labels=["component"])
    alive = GaugeMetricFamily("console_heartbeat_alive_processes",
                              "Worker or beat processes whose heartbeat is within its limit.", labels=["component"])
    for component, reading in readings().items():
        if reading.age is not None:
            age.add_metric([component], reading.age)
        alive.add_metric([component], reading.alive_count)
    yield age
    yield alive
