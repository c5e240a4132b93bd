"""The operations tab's reading of an InferenceService's pods and events: plain dicts from
the cluster in, rows for the page and the API out. Pure logic (no Django, no cluster calls),
so kubectl's way of summarising a pod can be tested on hand-written objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

# Log reading bounds: enough for a startup trace, small enough for one page.
DEFAULT_TAIL = 200
MIN_TAIL = 10
MAX_TAIL = 5000
LIMIT_BYTES = 1_000_000
# The containers KServe puts in a predictor or transformer pod, in the order the chooser offers them.
KNOWN_CONTAINERS = ("kserve-container", "storage-initializer", "queue-proxy", "agent")
REVISION_LABEL = "serving.knative.dev/revision"
# The event a scale from zero leaves on the InferenceService (the sandbox's activator records
# it; see docs/serving.md): "Revision <name> scaled from zero: the first request waited 6.97 s …".
COLD_START_REASON = "ColdStart"
_COLD_START = re.compile(r"Revision (?P<revision>\S+) scaled from zero\b.*?waited (?P<seconds>\d+(?:\.\d+)?) s")


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API (``2026-12-05T08:46:31Z``), or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def clamp_tail(value) -> int:
    """A requested line count within [MIN_TAIL, MAX_TAIL]; DEFAULT_TAIL when not a number."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return DEFAULT_TAIL
    return max(MIN_TAIL, min(MAX_TAIL, number))


@dataclass
class ContainerRow:
    """One container of a pod as the kubelet reports it."""

    name: str
    init: bool
    state: str  # "running", "waiting: CrashLoopBackOff", "terminated: Completed (exit 0)"
    ready: bool
    restarts: int
    succeeded: bool = False  # an init container that finished with exit code 0

    def as_dict(self) -> dict:
        return {"name": self.name, "init": self.init, "state": self.state, "ready": self.ready,
                "restarts": self.restarts}


@dataclass
class PodRow:
    """One pod of the endpoint, summarised the way ``kubectl get pods`` does."""

    name: str
    component: str
    revision: str
    phase: str
    status: str
    ready_containers: int
    total_containers: int
    restarts: int
    node: str
    created: datetime | None
    containers: list[ContainerRow] = field(default_factory=list)
    traffic_percent: int | None = None

    @property
    def ready(self) -> bool:
        return self.total_containers > 0 and self.ready_containers == self.total_containers

    @property
    def container_names(self) -> list[str]:
        return [c.name for c in self.containers]

    def default_container(self) -> str:
        """The container whose log explains the pod best: an init container that has not
        finished (it holds the pod back), else the model server, else the first."""
        for container in self.containers:
            if container.init and not container.succeeded:
                return container.name
        names = self.container_names
        if "kserve-container" in names:
            return "kserve-container"
        return names[0] if names else ""

    def as_dict(self) -> dict:
        return {"name": self.name, "component": self.component, "revision": self.revision, "phase": self.phase,
                "status": self.status, "ready": f"{self.ready_containers}/{self.total_containers}",
                "restarts": self.restarts, "node": self.node,
                "created": self.created.isoformat() if self.created else None,
                "traffic_percent": self.traffic_percent,
                "containers": [c.as_dict() for c in self.containers]}


@dataclass
class EventRow:
    """One core/v1 Event about the InferenceService or one of its pods."""

    type: str
    reason: str
    object: str
    message: str
    count: int
    last_seen: datetime | None
    source: str

    def as_dict(self) -> dict:
        return {"type": self.type, "reason": self.reason, "object": self.object, "message": self.message,
                "count": self.count, "last_seen": self.last_seen.isoformat() if self.last_seen else None,
                "source": self.source}


def _state(status: dict) -> tuple[str, bool]:
    state = status.get("state") or {}
    if "running" in state:
        return "running", False
    if "waiting" in state:
        reason = (state["waiting"] or {}).get("reason") or "waiting"
        return f"waiting: {reason}", False
    if "terminated" in state:
        term = state["terminated"] or {}
        code = term.get("exitCode")
        return f"terminated: {term.get('reason') or 'Terminated'} (exit {code})", code == 0
    return "unknown", False


def _containers(pod: dict) -> list[ContainerRow]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    rows = []
    for init, specs, statuses in ((True, spec.get("initContainers"), status.get("initContainerStatuses")),
                                  (False, spec.get("containers"), status.get("containerStatuses"))):
        by_name = {s.get("name"): s for s in statuses or [] if isinstance(s, dict)}
        for container in specs or []:
            name = container.get("name") or ""
            reported = by_name.get(name) or {}
            state, succeeded = _state(reported) if reported else ("not started", False)
            rows.append(ContainerRow(name=name, init=init, state=state, ready=bool(reported.get("ready")),
                                     restarts=int(reported.get("restartCount") or 0), succeeded=succeeded))
    return rows


def _pod_status(pod: dict, containers: list[ContainerRow]) -> str:
    """kubectl's STATUS column: Init:<reason> while an init container holds the pod, a
    container's waiting reason, else the phase (or the pod's own reason, e.g. Evicted)."""
    status = pod.get("status") or {}
    inits = [c for c in containers if c.init]
    for index, container in enumerate(inits):
        if container.succeeded:
            continue
        if container.state.startswith("waiting: ") and container.state != "waiting: PodInitializing":
            return "Init:" + container.state.removeprefix("waiting: ")
        if container.state.startswith("terminated: "):
            return "Init:Error"
        return f"Init:{index}/{len(inits)}"
    for container in containers:
        if not container.init and container.state.startswith("waiting: "):
            return container.state.removeprefix("waiting: ")
    if status.get("reason"):
        return str(status["reason"])
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition.get("reason") or "Pending"
    return status.get("phase") or "Unknown"


def pod_rows(pods: list[dict], traffic: list | None = None) -> list[PodRow]:
    """The endpoint's pods, newest revision first, each with its share of traffic when the
    InferenceService's status names its revision."""
    percent = {t.get("revisionName"): t.get("percent") for t in traffic or []
               if isinstance(t, dict) and t.get("revisionName")}
    rows = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        containers = _containers(pod)
        main = [c for c in containers if not c.init]
        revision = labels.get(REVISION_LABEL) or ""
        rows.append(PodRow(
            name=meta.get("name") or "",
            component=labels.get("component") or labels.get("serving.kserve.io/component") or "",
            revision=revision,
            phase=(pod.get("status") or {}).get("phase") or "Unknown",
            status=_pod_status(pod, containers),
            ready_containers=sum(1 for c in main if c.ready),
            total_containers=len(main),
            restarts=sum(c.restarts for c in containers),
            node=(pod.get("spec") or {}).get("nodeName") or "",
            created=parse_time(meta.get("creationTimestamp")),
            containers=containers,
            traffic_percent=percent.get(revision) if revision else None,
        ))
    rows.sort(key=lambda r: r.name)
    rows.sort(key=lambda r: r.revision, reverse=True)
    rows.sort(key=lambda r: r.component)  # predictor before transformer
    return rows


def replica_summary(rows: list[PodRow], *, min_replicas: int, max_replicas: int) -> dict:
    """Ready pods against the pods that exist and the replicas the endpoint asks for."""
    return {"ready": sum(1 for r in rows if r.ready), "pods": len(rows),
            "min": min_replicas, "max": max_replicas}


def event_rows(events: list[dict]) -> list[EventRow]:
    """Events, newest first (by last occurrence)."""
    rows = []
    for event in events:
        involved = event.get("involvedObject") or {}
        source = event.get("source") or {}
        rows.append(EventRow(
            type=event.get("type") or "Normal",
            reason=event.get("reason") or "",
            object=f"{involved.get('kind', '')}/{involved.get('name', '')}",
            message=event.get("message") or "",
            count=int(event.get("count") or (event.get("series") or {}).get("count") or 1),
            last_seen=parse_time(event.get("lastTimestamp") or event.get("eventTime")
                                 or event.get("firstTimestamp") or (event.get("metadata") or {})
                                 .get("creationTimestamp")),
            source=source.get("component") or event.get("reportingComponent") or "",
        ))
    # Timestamps have one-second resolution: within a second, an object's events are told
    # apart by their names, which the event recorder makes from the time in nanoseconds.
    epoch = datetime.min
    order = sorted(zip(rows, events, strict=True), key=lambda pair: (
        pair[0].last_seen.replace(tzinfo=None) if pair[0].last_seen else epoch,
        _name_stamp(pair[1])), reverse=True)
    return [row for row, _ in order]


def _name_stamp(event: dict) -> int:
    """The recorder's ``<object>.<hex nanoseconds>`` suffix of an event's name (0 if none)."""
    name = (event.get("metadata") or {}).get("name") or ""
    try:
        return int(name.rsplit(".", 1)[-1], 16)
    except ValueError:
        return 0


@dataclass
class ColdStart:
    """A scale from zero: when the first request was answered, which revision woke, and how
    long that request waited for it (None when the event does not say)."""

    time: datetime | None
    revision: str
    seconds: float | None
    message: str

    def as_dict(self) -> dict:
        return {"time": self.time.isoformat() if self.time else None, "revision": self.revision,
                "seconds": self.seconds, "message": self.message}


def cold_starts(events: list[dict]) -> list[ColdStart]:
    """The ``ColdStart`` events among ``events`` (the InferenceService's), oldest first."""
    found = []
    for row in event_rows([e for e in events if e.get("reason") == COLD_START_REASON]):
        match = _COLD_START.search(row.message)
        found.append(ColdStart(time=row.last_seen, revision=match["revision"] if match else "",
                               seconds=float(match["seconds"]) if match else None, message=row.message))
    return found[::-1]
