"""Reading an InferenceService's status: the console's phase and a "why is it not ready"
explanation (pure functions over the live object, its events and pods).

Phases: Pending (nothing running yet), Deploying (a change is rolling out), Ready, Degraded
(serving, but something is wrong — a new revision failing beside the old one, pods that
cannot be scheduled), Failed (not serving and it will not fix itself without a change),
Stopped, Unknown (the cluster could not be read).

KServe's ``status.observedGeneration`` comes from the Knative Service or Deployment, not from
the InferenceService, so it is never compared with ``metadata.generation``: progress is read
from conditions, model status and revisions (kserve.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from endpoints import connections

PENDING, DEPLOYING, READY, DEGRADED, FAILED, STOPPED, UNKNOWN = (
    "Pending", "Deploying", "Ready", "Degraded", "Failed", "Stopped", "Unknown")

# Reasons on PredictorReady that will not resolve by waiting.
FAILURE_REASONS = {"RevisionFailed", "ProgressDeadlineExceeded", "ContainerMissing", "ExitCode",
                   "NoSupportingRuntime", "RuntimeNotRecognized", "RuntimeDisabled", "InvalidPredictorSpec",
                   "FailedCreate", "ModelLoadFailed"}
FAILED_TRANSITIONS = {"InvalidSpec", "BlockedByFailedLoad"}


@dataclass
class Observed:
    phase: str
    ready: bool = False
    url: str = ""
    address_url: str = ""
    conditions: list = field(default_factory=list)
    traffic: list = field(default_factory=list)
    model_status: dict = field(default_factory=dict)
    runtime: str = ""


def revision_traffic(entries: list | None) -> list:
    """KServe's traffic entries as one per revision, with its total share and its tags.

    After a first deploy with ``canaryTrafficPercent``, KServe "splits" the one rolled-out
    revision against itself (two entries, same ``revisionName``, e.g. 10 and 90): the cluster is
    not splitting anything, so the console shows that revision with 100 %, never the split."""
    merged: list = []
    by_revision: dict[str, dict] = {}
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("revisionName")
        if not name or name not in by_revision:
            row = dict(entry)
            merged.append(row)
            if name:
                by_revision[name] = row
            continue
        row = by_revision[name]
        row["percent"] = (row.get("percent") or 0) + (entry.get("percent") or 0)
        row["latestRevision"] = bool(row.get("latestRevision") or entry.get("latestRevision"))
        tags = [t for t in (row.get("tag"), entry.get("tag")) if t]
        if tags:
            row["tag"] = ", ".join(dict.fromkeys(", ".join(tags).split(", ")))
        if not row.get("url") and entry.get("url"):
            row["url"] = entry["url"]
    return merged


def _condition(status: dict, ctype: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def observe(live: dict | None, *, stopped_desired: bool = False) -> Observed:
    """The console's view of a live InferenceService (None: it does not exist)."""
    if live is None:
        return Observed(phase=STOPPED if stopped_desired else PENDING)
    status = live.get("status") or {}
    ready_condition = _condition(status, "Ready") or {}
    predictor = _condition(status, "PredictorReady") or {}
    stopped = _condition(status, "Stopped") or {}
    model_status = status.get("modelStatus") or {}
    component = (status.get("components") or {}).get("predictor") or {}
    ready = ready_condition.get("status") == "True"
    observed = Observed(
        phase=UNKNOWN, ready=ready, url=status.get("url") or "",
        address_url=(status.get("address") or {}).get("url") or "",
        conditions=status.get("conditions") or [], traffic=revision_traffic(component.get("traffic")),
        model_status=model_status,
        runtime=status.get("servingRuntimeName") or status.get("clusterServingRuntimeName") or "",
    )
    transition = model_status.get("transitionStatus")
    if stopped.get("status") == "True" or (stopped_desired and not ready):
        observed.phase = STOPPED
    elif not status or not status.get("conditions"):
        observed.phase = PENDING
    elif ready:
        latest_created = component.get("latestCreatedRevision")
        latest_ready = component.get("latestReadyRevision")
        if transition in FAILED_TRANSITIONS:
            observed.phase = DEGRADED
        elif latest_created and latest_ready and latest_created != latest_ready:
            # The new revision is failing or still starting while the old one serves.
            observed.phase = DEGRADED if predictor.get("reason") in FAILURE_REASONS else DEPLOYING
        else:
            observed.phase = READY
    elif transition in FAILED_TRANSITIONS or predictor.get("reason") in FAILURE_REASONS:
        observed.phase = FAILED
    elif predictor.get("reason") == "Unschedulable":
        observed.phase = DEGRADED
    else:
        observed.phase = DEPLOYING
    return observed


def scaled_to_zero(*, phase: str, min_replicas: int | None, model_status: dict | None) -> bool:
    """Ready with no copy running: a Knative endpoint allowed to scale to zero (minReplicas 0)
    that has no traffic. KServe keeps such an InferenceService Ready and reports
    ``modelStatus.copies.totalCopies: 0``; the first request starts a pod again. Without a
    copy count nothing is claimed."""
    if phase != READY or min_replicas != 0:
        return False
    copies = (model_status or {}).get("copies") or {}
    return copies.get("totalCopies") == 0


# Longest first: a platform-wide connection's account also starts with the project prefix.
CONNECTION_ACCOUNT_PREFIXES = (connections.PLATFORM_OBJECT_PREFIX, connections.OBJECT_PREFIX)


def _storage_failure(live: dict, failure: dict) -> str | None:
    """Which storage connection a failed download used, when the predictor runs as a connection's
    ServiceAccount (``endpoints.connections.object_name``) and KServe reports a model failure."""
    predictor = (live.get("spec") or {}).get("predictor") or {}
    account = predictor.get("serviceAccountName") or ""
    prefix = next((p for p in CONNECTION_ACCOUNT_PREFIXES if account.startswith(p)), None)
    if prefix is None or not failure:
        return None
    uri = (predictor.get("model") or {}).get("storageUri", "")
    scope = "platform-wide connection" if prefix == connections.PLATFORM_OBJECT_PREFIX else "connection"
    message = failure.get("message") or failure.get("reason") or "no message"
    return (f"Storage: the storage initializer downloads {uri} with the credentials of {scope} "
            f"{account[len(prefix):]} (ServiceAccount {account}) and failed: {message}")


def explain(live: dict | None, events: list[dict] | None = None, pods: list[dict] | None = None) -> list[str]:
    """Why the endpoint is not ready, most useful first (kserve.md §2's suggested order)."""
    if live is None:
        return ["The InferenceService does not exist on the cluster yet."]
    status = live.get("status") or {}
    reasons: list[str] = []
    ready = _condition(status, "Ready")
    if ready is None:
        reasons.append("KServe has not reported any status yet: the controller may still be starting.")
    elif ready.get("status") != "True":
        for ctype in ("PredictorReady", "IngressReady"):
            cond = _condition(status, ctype)
            if cond and cond.get("status") != "True":
                detail = ": ".join(part for part in (cond.get("reason"), cond.get("message")) if part)
                reasons.append(f"{ctype} is {cond.get('status')}" + (f" — {detail}" if detail else ""))
                break
    model_status = status.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    if model_status.get("transitionStatus") not in (None, "UpToDate"):
        line = f"Model status: {model_status['transitionStatus']}"
        if failure:
            line += f" — {failure.get('reason', '')}: {failure.get('message', '')}".rstrip(": ")
            if failure.get("exitCode") is not None:
                line += f" (exit code {failure['exitCode']})"
        reasons.append(line)
    storage_line = _storage_failure(live, failure)
    if storage_line:
        reasons.append(storage_line)
    target = (model_status.get("states") or {}).get("targetModelState")
    if target and target not in ("Loaded", ""):
        reasons.append(f"Target model state: {target}")
    component = (status.get("components") or {}).get("predictor") or {}
    created, ready_rev = component.get("latestCreatedRevision"), component.get("latestReadyRevision")
    if created and created != ready_rev:
        reasons.append(f"Revision {created} is not ready yet" + (f"; {ready_rev} keeps serving" if ready_rev else ""))
    for event in sorted(events or [], key=lambda e: e.get("lastTimestamp") or "", reverse=True)[:5]:
        if event.get("type") == "Warning":
            reasons.append(f"Event {event.get('reason')}: {event.get('message')}")
    for pod in pods or []:
        pod_status = pod.get("status") or {}
        scheduled = next((c for c in pod_status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        name = pod["metadata"]["name"]
        if scheduled and scheduled.get("status") == "False":
            reasons.append(f"Pod {name} cannot be scheduled: {scheduled.get('message') or scheduled.get('reason')}")
        for container in [*(pod_status.get("initContainerStatuses") or []), *(pod_status.get("containerStatuses") or [])]:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerError"):
                last = ((container.get("lastState") or {}).get("terminated") or {})
                detail = last.get("message") or waiting.get("message") or ""
                reasons.append(f"Pod {name}: container {container['name']} is in {waiting['reason']}"
                               + (f" — {detail}" if detail else ""))
    if not reasons and ready is not None and ready.get("status") == "True":
        return []
    return reasons
