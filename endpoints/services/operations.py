"""Day-2 operation of an endpoint: its pods, their container logs and the Kubernetes events
about the InferenceService and its pods, read live from the cluster (nothing is stored).

A cluster that cannot be reached or answers with an error never raises out of here: the
reading carries the message instead, for the page and the API to show. Reading a log is
audited (``endpoint.logs_read``: endpoint, pod, container — never the log's content), since
logs can hold request data; a user following a log is recorded once per pod and container
every ``LOG_AUDIT_WINDOW``, not on every poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from endpoints import operations as ops
from endpoints.cluster import ClusterError
from endpoints.models import Endpoint

logger = logging.getLogger(__name__)

LOG_AUDIT_ACTION = "endpoint.logs_read"
LOG_AUDIT_WINDOW = timedelta(minutes=5)
# Events of at most this many pods are read (one request each), newest revision first.
MAX_PODS_FOR_EVENTS = 20


@dataclass
class OperationsReading:
    """What the cluster says about an endpoint's pods and events; ``error`` when it could not say."""

    pods: list[ops.PodRow] = field(default_factory=list)
    events: list[ops.EventRow] = field(default_factory=list)
    error: str = ""


@dataclass
class LogReading:
    """One container's log, or why it could not be read."""

    pod: str
    container: str
    tail: int
    previous: bool
    text: str = ""
    error: str = ""
    truncated: bool = False


def _client(endpoint: Endpoint):
    return endpoint.project.cluster.client()


def _cluster_message(exc: Exception, cluster_name: str) -> str:
    if isinstance(exc, ClusterError) and exc.status is None:
        return f"The cluster {cluster_name} could not be reached: {exc.message}"
    if isinstance(exc, ClusterError):
        return f"The cluster {cluster_name} answered with an error: {exc}"
    return f"The cluster {cluster_name} could not be used: {exc}"


def _read(endpoint: Endpoint, reader):
    """Run ``reader(client)``; a failure comes back as the message for the user."""
    try:
        client = _client(endpoint)
    except Exception as exc:  # noqa: BLE001 - kubeconfig/in-cluster set-up errors of any type
        logger.warning("cluster client for %s unavailable: %s", endpoint.project.cluster.name, exc)
        return None, _cluster_message(exc, endpoint.project.cluster.name)
    try:
        with client:
            return reader(client), ""
    except ClusterError as exc:
        return None, _cluster_message(exc, endpoint.project.cluster.name)


def endpoint_pods(*, endpoint: Endpoint) -> OperationsReading:
    """The endpoint's pods (predictor, canary revision, transformer) as the cluster reports them."""
    pods, error = _read(endpoint, lambda c: c.pods_for(endpoint.project.namespace, endpoint.name))
    return OperationsReading(pods=ops.pod_rows(pods or [], _traffic(endpoint)), error=error)


def endpoint_operations(*, endpoint: Endpoint) -> OperationsReading:
    """Pods and the events about the InferenceService and those pods, newest first."""
    namespace = endpoint.project.namespace

    def read(client):
        pods = client.pods_for(namespace, endpoint.name)
        events = list(client.events_for(namespace, endpoint.name))
        for pod in ops.pod_rows(pods)[:MAX_PODS_FOR_EVENTS]:
            events.extend(client.events_for(namespace, pod.name, kind="Pod"))
        return pods, events

    result, error = _read(endpoint, read)
    pods, events = result if result is not None else ([], [])
    return OperationsReading(pods=ops.pod_rows(pods, _traffic(endpoint)), events=ops.event_rows(events), error=error)


def endpoint_cold_starts(*, endpoint: Endpoint) -> tuple[list[ops.ColdStart], str]:
    """The endpoint's scales from zero the cluster still has events of (oldest first), and the
    message when the cluster could not be read."""
    events, error = _read(endpoint, lambda c: c.events_for(endpoint.project.namespace, endpoint.name))
    return ops.cold_starts(events or []), error


def _traffic(endpoint: Endpoint) -> list:
    status = getattr(endpoint, "status", None)
    return (status.traffic if status is not None else None) or []


def endpoint_read_log(*, actor, endpoint: Endpoint, pod: str, container: str = "", tail=ops.DEFAULT_TAIL,
                      previous: bool = False, pods: list[ops.PodRow] | None = None) -> LogReading:
    """A container's log, for someone who may deploy the endpoint (the caller checks).

    The pod must be one of the endpoint's (a name from another InferenceService in the
    namespace is refused like an unknown one), the container one of the pod's; an empty
    container means the one whose log explains the pod best (``PodRow.default_container``).
    Raises ``ValidationError`` (fields ``pod``, ``container``) for a bad choice. ``pods``: the
    endpoint's pods just read by the caller (``endpoint_pods``), to spare a second listing.
    """
    tail = ops.clamp_tail(tail)
    namespace = endpoint.project.namespace
    if pods is None:
        listing, error = _read(endpoint, lambda c: c.pods_for(namespace, endpoint.name))
        if error:
            return LogReading(pod=pod, container=container, tail=tail, previous=previous, error=error)
        pods = ops.pod_rows(listing or [])
    rows = {row.name: row for row in pods}
    if pod not in rows:
        raise ValidationError({"pod": [f"The endpoint has no pod named {pod!r}."]})
    row = rows[pod]
    container = container or row.default_container()
    if container not in row.container_names:
        raise ValidationError({"container": [f"Pod {pod} has no container {container!r} "
                                             f"(it has {', '.join(row.container_names)})."]})
    reading = LogReading(pod=pod, container=container, tail=tail, previous=previous)
    text, error = _read(endpoint, lambda c: c.pod_logs(namespace, pod, container, tail, previous=previous,
                                                        limit_bytes=ops.LIMIT_BYTES))
    reading.text, reading.error = text or "", error
    reading.truncated = len(reading.text.encode()) >= ops.LIMIT_BYTES
    _audit_log_read(actor=actor, endpoint=endpoint, reading=reading)
    return reading


@transaction.atomic
def _audit_log_read(*, actor, endpoint: Endpoint, reading: LogReading) -> None:
    outcome = audit.FAILURE if reading.error else audit.SUCCESS
    details = {"pod": reading.pod, "container": reading.container, "previous": reading.previous,
               "namespace": endpoint.project.namespace, "cluster": endpoint.project.cluster.name}
    recent = AuditEvent.objects.filter(
        action=LOG_AUDIT_ACTION, actor_id=str(actor.pk), target_type="endpoint", target_id=str(endpoint.pk),
        outcome=outcome, occurred_at__gte=timezone.now() - LOG_AUDIT_WINDOW,
        details__pod=reading.pod, details__container=reading.container, details__previous=reading.previous)
    if recent.exists():
        return
    if reading.error:
        details["error"] = reading.error[:500]
    audit.record(action=LOG_AUDIT_ACTION, actor=actor, target=endpoint, project=endpoint.project,
                 outcome=outcome, details=details)
