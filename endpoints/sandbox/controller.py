"""A simulated KServe controller for the sandbox cluster.

It watches InferenceServices in the fake API server's store and behaves, as seen from the
API, like KServe's admission webhooks and controller: it defaults and validates objects at
admission, adds the finalizer, picks a runtime by KServe's rules, creates pods and events,
and moves ``status`` through realistic conditions, URLs, traffic and ``modelStatus``.

What it knows about KServe comes from a release profile (``endpoints.sandbox.profile``; the
built-in one is KServe 0.20): the ClusterServingRuntimes it installs at start and the
webhook's defaulting facts. Runtime selection is the sandbox's own
(``endpoints.sandbox.selection``). Nothing here imports the console, so the console can be
checked against it.

Documented failure rules (so tests and demos can provoke them on purpose):

- No runtime supports the model's format/version/protocol → ``modelStatus.transitionStatus:
  InvalidSpec``, ``lastFailureInfo.reason: NoSupportingRuntime``. An explicit runtime that
  does not exist → ``RuntimeNotRecognized``; a disabled one → ``RuntimeDisabled``; one that
  lacks the protocol the model sets → ``NoSupportingRuntime`` with "Specified runtime does not
  support specified protocol version", or the format → "… specified framework/version".
- A storage URI the sandbox treats as unreachable — any URI whose bucket, host or first path
  segment starts with ``missing`` or ``unreachable`` (``s3://missing-bucket/model``,
  ``gs://unreachable/x``) — fails after the load delay with ``ModelLoadFailed``: the
  storage-initializer exits 1 and the pod sits in ``Init:CrashLoopBackOff``.
- With ``accelerator_capacity`` set, pods asking for more of a resource than remains free
  stay ``Pending`` with ``PodScheduled=False`` (``Insufficient nvidia.com/gpu``).
- ``serving.kserve.io/stop: "true"`` removes the pods and sets ``Stopped=True``.
- Changing ``serving.kserve.io/deploymentMode`` after the controller recorded it is denied
  at admission (403), as KServe's validating webhook does.

Delays are configurable (zero in tests): ``load_seconds`` until the model is loading,
``ready_seconds`` until it is Ready.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from endpoints.sandbox import profile as profiles
from endpoints.sandbox.errors import ApiError
from endpoints.sandbox.selection import ModelRequest, Selection, select_runtime

logger = logging.getLogger(__name__)

FINALIZER = "inferenceservice.finalizers"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
STOP_ANNOTATION = "serving.kserve.io/stop"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "intel.com/gpu", "habana.ai/gaudi")


@dataclass
class SandboxSettings:
    """How the simulated cluster behaves: install defaults, delays, capacity, and which KServe
    release it simulates (``profile``: a release-profile directory, None = the built-in one)."""

    ingress_domain: str = "example.com"
    default_deployment_mode: str = "Knative"
    load_seconds: float = 0.0
    ready_seconds: float = 0.0
    accelerator_capacity: dict[str, int] = field(default_factory=dict)
    profile: str | Path | None = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def unreachable_storage(uri: str) -> bool:
    parsed = urlparse(uri or "")
    first = parsed.netloc or (parsed.path.strip("/").split("/") or [""])[0]
    return first.startswith(("missing", "unreachable"))


class SandboxController:
    """Runs in a background thread beside a ``FakeApiServer``'s store."""

    def __init__(self, store, settings: SandboxSettings | None = None,
                 profile: profiles.ReleaseProfile | None = None):
        self.store = store
        self.settings = settings or SandboxSettings()
        if profile is None:
            profile = profiles.load(self.settings.profile or profiles.BUILTIN_PROFILE_DIR)
        self.profile = profile
        self._queue: list[tuple[float, str, str]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._unsubscribe = None
        # (namespace, name) -> {"template": hash, "changed_at": monotonic, "revision": n, "rolled_out": n, ...}
        self._tracked: dict[tuple[str, str], dict] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> SandboxController:
        # What the release's installer creates before any InferenceService exists.
        self.store.seed(self.profile.runtime_objects(), manager="kserve-installer")
        if hasattr(self.store, "add_admission"):
            self.store.add_admission("inferenceservices", mutate=self.default_isvc, validate=self.validate_isvc,
                                     name="inferenceservice.kserve-webhook-server.validator")
        self._unsubscribe = self.store.on_change(self._on_change)
        self._thread = threading.Thread(target=self._run, name="sandbox-kserve-controller", daemon=True)
        self._thread.start()
        for obj in self.store.list("inferenceservices"):
            self._enqueue(obj["metadata"]["namespace"], obj["metadata"]["name"])
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._unsubscribe:
            self._unsubscribe()
        with self._cond:
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def _on_change(self, event) -> None:
        if event.resource == "inferenceservices":
            self._enqueue(event.namespace, event.name)

    def _enqueue(self, namespace: str, name: str, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + delay, namespace, name))
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._stopping:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = (self._queue[0][0] - time.monotonic()) if self._queue else None
                    self._cond.wait(timeout=timeout if timeout is None else max(timeout, 0.001))
                if self._stopping:
                    return
                _, namespace, name = heapq.heappop(self._queue)
                # Coalesce duplicates that are already due.
                self._queue = [item for item in self._queue if (item[1], item[2]) != (namespace, name)
                               or item[0] > time.monotonic()]
                heapq.heapify(self._queue)
            try:
                self.reconcile(namespace, name)
            except ApiError as exc:
                if exc.code == 409:
                    self._enqueue(namespace, name, 0.05)  # lost a race with a writer: try again
                else:
                    logger.warning("sandbox controller: %s/%s: %s", namespace, name, exc)
            except Exception:  # noqa: BLE001 - the simulated controller must keep running
                logger.exception("sandbox controller failed on %s/%s", namespace, name)

    # --- admission -------------------------------------------------------------------------
    def default_isvc(self, obj: dict, old: dict | None) -> None:
        """What KServe's mutating webhook does to an InferenceService on admission."""
        meta = obj.setdefault("metadata", {})
        annotations = meta.setdefault("annotations", {})
        mode = annotations.get(MODE_ANNOTATION)
        aliases = self.profile.deployment_mode_aliases
        if mode in aliases:
            annotations[MODE_ANNOTATION] = aliases[mode]
        elif not mode and self.settings.default_deployment_mode == "Standard":
            annotations[MODE_ANNOTATION] = "Standard"
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        for key in self.profile.legacy_framework_keys:
            if key in predictor:
                legacy = predictor.pop(key)
                model = predictor.setdefault("model", {})
                model.update({k: v for k, v in legacy.items() if k not in model})
                model["modelFormat"] = {"name": key}
        model = predictor.get("model")
        if model:
            fmt = (model.get("modelFormat") or {}).get("name", "")
            if fmt in self.profile.protocol_v2_formats and "protocolVersion" not in model:
                model["protocolVersion"] = "v2"
            if fmt:
                annotations.setdefault("modelFormat", fmt)
        if not annotations:
            meta.pop("annotations", None)

    def validate_isvc(self, obj: dict, old: dict | None) -> str | None:
        """What KServe's validating webhook refuses (returns the denial message)."""
        if old is None:
            return None
        recorded = (old.get("status") or {}).get("deploymentMode")
        wanted = ((obj.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION)
        wanted = self.profile.deployment_mode_aliases.get(wanted, wanted) or self.settings.default_deployment_mode
        if recorded and wanted != recorded:
            return (f"update rejected: deploymentMode cannot be changed from '{recorded}' to '{wanted}'; "
                    "delete the InferenceService and create it again")
        return None

    # --- reconcile ---------------------------------------------------------------------------
    def _mode(self, obj: dict) -> str:
        recorded = (obj.get("status") or {}).get("deploymentMode")
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION)
        return (recorded or self.profile.deployment_mode_aliases.get(annotation, annotation)
                or self.settings.default_deployment_mode)

    def _select_runtime(self, namespace: str, predictor: dict) -> Selection:
        """The runtime KServe would use for this predictor, or why there is none."""
        return select_runtime(ModelRequest.from_predictor(predictor),
                              namespaced=self.store.list("servingruntimes", namespace),
                              cluster=self.store.list("clusterservingruntimes"),
                              protocol_order=self.profile.protocol_order)

    def _accelerators(self, model: dict) -> dict[str, int]:
        limits = ((model.get("resources") or {}).get("limits") or {})
        out = {}
        for key, value in limits.items():
            if key in GPU_RESOURCES or key.startswith("nvidia.com/mig-"):
                try:
                    out[key] = int(value)
                except (TypeError, ValueError):
                    continue
        return out

    def _accelerators_in_use(self, exclude: tuple[str, str]) -> dict[str, int]:
        used: dict[str, int] = {}
        for pod in self.store.list("pods", label_selector="serving.kserve.io/inferenceservice"):
            key = (pod["metadata"]["namespace"], pod["metadata"]["labels"]["serving.kserve.io/inferenceservice"])
            if key == exclude or (pod.get("status") or {}).get("phase") != "Running":
                continue
            for container in (pod.get("spec") or {}).get("containers") or []:
                for resource, value in ((container.get("resources") or {}).get("limits") or {}).items():
                    if resource in GPU_RESOURCES:
                        used[resource] = used.get(resource, 0) + int(value)
        return used

    def reconcile(self, namespace: str, name: str) -> None:
        obj = self.store.get("inferenceservices", namespace, name)
        key = (namespace, name)
        if obj is None:
            self._tracked.pop(key, None)
            self._delete_pods(namespace, name)
            return
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            self._delete_pods(namespace, name)
            self.store.add_event(obj, "InferenceServiceDeleted", f"Deleted InferenceService {name}")
            self.store.remove_finalizer("inferenceservices", namespace, name, FINALIZER)
            self._tracked.pop(key, None)
            return
        if FINALIZER not in (meta.get("finalizers") or []):
            self.store.patch("inferenceservices", namespace, name,
                             {"metadata": {"finalizers": [*(meta.get("finalizers") or []), FINALIZER]}},
                             manager="kserve-controller")
            return  # the patch triggers another pass

        predictor = (obj.get("spec") or {}).get("predictor") or {}
        model = predictor.get("model") or {}
        mode = self._mode(obj)
        annotations = meta.get("annotations") or {}
        stopped = annotations.get(STOP_ANNOTATION) == "true"
        template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
        template_hash = _hash([template, {k: v for k, v in annotations.items()
                                          if not k.startswith("inference-console.io/")}])
        track = self._tracked.setdefault(key, {"template": None, "revision": 0, "rolled_out": 0,
                                               "changed_at": time.monotonic(), "uid": meta.get("uid")})
        if track["uid"] != meta.get("uid"):
            track.update(template=None, revision=0, rolled_out=0)
            track["uid"] = meta.get("uid")
        if track["template"] != template_hash:
            track["template"] = template_hash
            track["revision"] += 1
            track["changed_at"] = time.monotonic()
        elapsed = time.monotonic() - track["changed_at"]

        selection = self._select_runtime(namespace, predictor)
        status = self._status(obj, mode, track, elapsed, stopped, selection.name, selection.kind, selection.reason,
                              selection.message, predictor, model)
        self._write_status(obj, status)
        if status.get("_next") is not None:
            self._enqueue(namespace, name, status["_next"])

    def _conditions(self, previous: list[dict], wanted: dict[str, tuple[str, str, str]]) -> list[dict]:
        """Conditions in KServe's shape, keeping lastTransitionTime when a status is unchanged."""
        old = {c["type"]: c for c in previous or []}
        out = []
        for ctype, (state, reason, message) in wanted.items():
            before = old.get(ctype)
            transition = before["lastTransitionTime"] if before and before.get("status") == state else _now()
            condition = {"type": ctype, "status": state, "lastTransitionTime": transition}
            if reason:
                condition["reason"] = reason
            if message:
                condition["message"] = message
            if ctype in ("LatestDeploymentReady", "RoutesReady", "Stopped"):
                condition["severity"] = "Info"
            out.append(condition)
        return sorted(out, key=lambda c: c["type"])

    def _status(self, obj, mode, track, elapsed, stopped, runtime_name, runtime_kind, failure, failure_message,
                predictor, model) -> dict:
        meta = obj["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        previous = obj.get("status") or {}
        domain = self.settings.ingress_domain
        knative = mode == "Knative"
        revision_name = f"{name}-predictor-{track['revision']:05d}"
        status: dict = {"deploymentMode": mode, "observedGeneration": meta.get("generation", 1)}
        events: list[tuple[str, str, str]] = []  # emitted only when the status actually changes
        previous_failure = (previous.get("modelStatus") or {}).get("lastFailureInfo") or {}

        def failure_time(reason: str) -> str:
            return previous_failure.get("time") if previous_failure.get("reason") == reason else _now()

        if runtime_kind == "ServingRuntime":
            status["servingRuntimeName"] = runtime_name
        elif runtime_kind == "ClusterServingRuntime":
            status["clusterServingRuntimeName"] = runtime_name
        min_replicas = predictor.get("minReplicas", 1)
        replicas = max(min_replicas, 1) if min_replicas else 0
        next_check = None
        pods: list[dict] = []

        if stopped:
            conditions = {"Ready": ("False", "Stopped", "The InferenceService is stopped"),
                          "PredictorReady": ("False", "Stopped", ""), "IngressReady": ("False", "Stopped", ""),
                          "Stopped": ("True", "", "")}
            status["modelStatus"] = {"transitionStatus": "UpToDate", "states": {"activeModelState": "",
                                                                                 "targetModelState": ""}}
        elif failure:
            conditions = {"Ready": ("False", "PredictorNotReady", failure_message),
                          "PredictorReady": ("False", failure, failure_message),
                          "IngressReady": ("False", "PredictorNotReady", "Predictor ingress not created"),
                          "Stopped": ("False", "", "")}
            status["modelStatus"] = {
                "transitionStatus": "InvalidSpec",
                "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": failure, "message": failure_message, "time": failure_time(failure)},
            }
            events.append(("InternalError", failure_message, "Warning"))
        elif elapsed < self.settings.load_seconds + self.settings.ready_seconds:
            loading = elapsed >= self.settings.load_seconds
            conditions = {"Ready": ("Unknown", "PredictorNotReady", "Waiting for the predictor to become ready"),
                          "PredictorReady": ("Unknown", "RevisionMissing" if knative else "MinimumReplicasUnavailable",
                                             "Configuration is waiting for a Revision to become ready."),
                          "IngressReady": ("Unknown", "PredictorNotReady", ""),
                          "Stopped": ("False", "", "")}
            status["modelStatus"] = {"transitionStatus": "InProgress",
                                     "states": {"activeModelState": "", "targetModelState":
                                                "Loading" if loading else "Pending"}}
            pods = self._pods(obj, model, replicas, revision_name, phase="Pending", loading=loading)
            remaining = (self.settings.load_seconds + self.settings.ready_seconds) - elapsed
            next_check = min(remaining, max(self.settings.load_seconds - elapsed, 0.0) or remaining)
        elif unreachable_storage(model.get("storageUri", "")):
            message = (f"storage-initializer: failed to download {model.get('storageUri')}: "
                       "the bucket or object does not exist or is not readable")
            conditions = {"Ready": ("False", "PredictorNotReady", message),
                          "PredictorReady": ("False", "RevisionFailed" if knative else "MinimumReplicasUnavailable",
                                             message),
                          "IngressReady": ("False", "PredictorNotReady", "Predictor ingress not created"),
                          "Stopped": ("False", "", "")}
            status["modelStatus"] = {
                "transitionStatus": "BlockedByFailedLoad",
                "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"location": f"{revision_name}-deployment", "reason": "ModelLoadFailed",
                                    "message": message, "modelRevisionName": revision_name, "exitCode": 1,
                                    "time": failure_time("ModelLoadFailed")},
                "copies": {"failedCopies": max(replicas, 1), "totalCopies": 0},
            }
            pods = self._pods(obj, model, max(replicas, 1), revision_name, phase="Pending", failed_load=True)
            events.append(("InferenceServiceNotReady", f"InferenceService {name} is not ready: {message}", "Warning"))
        else:
            wanted = self._accelerators(model)
            capacity = self.settings.accelerator_capacity
            short = None
            if capacity and wanted and replicas:
                in_use = self._accelerators_in_use((namespace, name))
                for resource, count in wanted.items():
                    free = capacity.get(resource, 0) - in_use.get(resource, 0)
                    if count * replicas > free:
                        short = resource
            if short:
                message = f"0/3 nodes are available: 3 Insufficient {short}."
                conditions = {"Ready": ("False", "PredictorNotReady", message),
                              "PredictorReady": ("False", "Unschedulable" if knative else "MinimumReplicasUnavailable",
                                                 message),
                              "IngressReady": ("False", "PredictorNotReady", ""), "Stopped": ("False", "", "")}
                status["modelStatus"] = {"transitionStatus": "InProgress",
                                         "states": {"activeModelState": "", "targetModelState": "Pending"}}
                pods = self._pods(obj, model, replicas, revision_name, phase="Pending", unschedulable=short)
            else:
                conditions = {"Ready": ("True", "", ""), "PredictorReady": ("True", "", ""),
                              "IngressReady": ("True", "", ""), "Stopped": ("False", "", "")}
                status["modelStatus"] = {"transitionStatus": "UpToDate",
                                         "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                                         "copies": {"failedCopies": 0, "totalCopies": replicas}}
                pods = self._pods(obj, model, replicas, revision_name, phase="Running")
                if not any(c["type"] == "Ready" and c["status"] == "True" for c in previous.get("conditions") or []):
                    events.append(("InferenceServiceReady", f"InferenceService [{name}] is Ready", "Normal"))
        if knative:
            conditions.update({
                "PredictorConfigurationReady": conditions["PredictorReady"],
                "PredictorRouteReady": ("True", "", "") if conditions["Ready"][0] == "True" else conditions["Ready"],
                "LatestDeploymentReady": conditions["PredictorReady"],
                "RoutesReady": ("True", "", "") if conditions["Ready"][0] == "True" else conditions["Ready"],
            })
        status["conditions"] = self._conditions(previous.get("conditions"), conditions)

        ready = conditions["Ready"][0] == "True"
        host = f"{name}.{namespace}.{domain}" if knative else f"{name}-{namespace}.{domain}"
        if ready or previous.get("url"):
            status["url"] = f"http://{host}"
            status["address"] = {"url": (f"http://{name}.{namespace}.svc.cluster.local" if knative
                                         else f"http://{name}-predictor.{namespace}.svc.cluster.local")}
        component: dict = {}
        if knative:
            component["latestCreatedRevision"] = revision_name
            if ready:
                canary = predictor.get("canaryTrafficPercent")
                rolled = track["rolled_out"]
                if canary is not None and canary < 100 and rolled and rolled != track["revision"]:
                    prev_name = f"{name}-predictor-{rolled:05d}"
                    component["traffic"] = [
                        {"revisionName": revision_name, "percent": canary, "latestRevision": True, "tag": "latest"},
                        {"revisionName": prev_name, "percent": 100 - canary, "latestRevision": False, "tag": "prev"},
                    ]
                    component["previousRolledoutRevision"] = prev_name
                    component["latestRolledoutRevision"] = prev_name
                else:
                    if rolled and rolled != track["revision"]:
                        component["previousRolledoutRevision"] = f"{name}-predictor-{rolled:05d}"
                    track["rolled_out"] = track["revision"]
                    component["traffic"] = [{"revisionName": revision_name, "percent": 100, "latestRevision": True}]
                    component["latestRolledoutRevision"] = revision_name
                component["latestReadyRevision"] = revision_name
            elif track["rolled_out"]:
                component["latestReadyRevision"] = f"{name}-predictor-{track['rolled_out']:05d}"
        if ready:
            component["url"] = f"http://{name}-predictor.{namespace}.{domain}"
            component["address"] = {"url": f"http://{name}-predictor.{namespace}.svc.cluster.local"}
        status["components"] = {"predictor": component}
        rolled = track["rolled_out"]
        if knative and not stopped and rolled and rolled != track["revision"]:
            # Knative keeps the previously rolled-out revision serving while the new one
            # loads (or fails), and beside it for the rest of the traffic during a canary.
            pods += self._pods(obj, model, replicas, f"{name}-predictor-{rolled:05d}", phase="Running")
        self._sync_pods(namespace, name, pods)
        status["_next"] = next_check
        status["_events"] = events
        return status

    def _write_status(self, obj: dict, status: dict) -> None:
        events = status.get("_events") or []
        status = {k: v for k, v in status.items() if not k.startswith("_")}
        current = obj.get("status") or {}
        if _hash(current) == _hash(status):
            return
        self.store.update_status("inferenceservices", obj["metadata"]["namespace"], obj["metadata"]["name"], status)
        for reason, message, kind in events:
            self.store.add_event(obj, reason, message, type=kind)

    # --- pods ------------------------------------------------------------------------------
    def _pods(self, obj, model, count, revision_name, *, phase, loading=False, failed_load=False,
              unschedulable=None) -> list[dict]:
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        limits = (model.get("resources") or {}).get("limits") or {}
        pods = []
        for index in range(count):
            container_status = {"name": "kserve-container", "ready": phase == "Running", "restartCount": 0,
                                "image": "kserve/sandbox-model-server",
                                "state": {"running": {}} if phase == "Running"
                                else {"waiting": {"reason": "PodInitializing"}}}
            init_state = ({"terminated": {"exitCode": 0, "reason": "Completed"}} if phase == "Running" or loading
                          else {"waiting": {"reason": "PodInitializing"}})
            conditions = [{"type": "PodScheduled", "status": "True"}]
            if failed_load:
                init_state = {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off restarting failed container storage-initializer"}}
                container_status["state"] = {"waiting": {"reason": "PodInitializing"}}
            if unschedulable:
                conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                               "message": f"0/3 nodes are available: 3 Insufficient {unschedulable}."}]
            pods.append({
                "metadata": {"name": f"{revision_name}-deployment-{index}", "namespace": namespace,
                             "labels": {"serving.kserve.io/inferenceservice": name, "component": "predictor"}},
                "spec": {"containers": [{"name": "kserve-container", "image": "kserve/sandbox-model-server",
                                         "resources": {"limits": dict(limits)}}],
                         "initContainers": [{"name": "storage-initializer", "image": "kserve/storage-initializer"}]},
                "status": {"phase": phase, "conditions": conditions,
                           "initContainerStatuses": [{"name": "storage-initializer", "ready": phase == "Running",
                                                      "restartCount": 3 if failed_load else 0,
                                                      "image": "kserve/storage-initializer",
                                                      "state": init_state,
                                                      **({"lastState": {"terminated": {
                                                          "exitCode": 1, "reason": "Error",
                                                          "message": "model artifact not found"}}}
                                                         if failed_load else {})}],
                           "containerStatuses": [container_status]},
            })
        return pods

    def _sync_pods(self, namespace: str, name: str, pods: list[dict]) -> None:
        wanted = {p["metadata"]["name"]: p for p in pods}
        for existing in self.store.list("pods", namespace, label_selector=f"serving.kserve.io/inferenceservice={name}"):
            if existing["metadata"]["name"] not in wanted:
                self.store.delete("pods", namespace, existing["metadata"]["name"])
        for pod in pods:
            current = self.store.get("pods", namespace, pod["metadata"]["name"])
            if current is None or _hash(current.get("status")) != _hash(pod["status"]):
                self.store.set_pod(pod)

    def _delete_pods(self, namespace: str, name: str) -> None:
        for pod in self.store.list("pods", namespace, label_selector=f"serving.kserve.io/inferenceservice={name}"):
            self.store.delete("pods", namespace, pod["metadata"]["name"])
