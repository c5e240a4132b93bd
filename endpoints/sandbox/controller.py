"""A simulated KServe controller for the sandbox cluster.

It watches InferenceServices in the fake API server's store and behaves, as seen from the
API, like one KServe release's admission webhooks and controller in a cluster with Knative
Serving and a pool of nodes: it defaults and validates objects at admission, adds the
finalizer, picks a runtime by KServe's rules, creates pods and events, and moves ``status``
through realistic conditions, URLs, traffic and ``modelStatus``.

What it knows comes from a release profile (``endpoints.sandbox.profile``; the built-in one is
KServe 0.20, any directory of a release's files is another): the ClusterServingRuntimes and
``inferenceservice-config`` it installs at start, the Knative ConfigMaps and the nodes, and the
release's webhook facts (``endpoints.sandbox.admission``). The cluster objects are read back
from the store on every pass, so ``kubectl edit`` of a ConfigMap or a node takes effect like on
a real cluster. Nothing here imports the console, so the console can be checked against it.

Documented failure rules (so tests and demos can provoke them on purpose):

- No runtime supports the model's format/version/protocol → ``modelStatus.transitionStatus:
  InvalidSpec``, ``lastFailureInfo.reason: NoSupportingRuntime``. An explicit runtime that
  does not exist → ``RuntimeNotRecognized``; a disabled one → ``RuntimeDisabled``; one that
  lacks the protocol the model sets → ``NoSupportingRuntime`` with "Specified runtime does not
  support specified protocol version", or the format → "… specified framework/version".
- Knative mode: a PodSpec field ``config-features`` leaves disabled (node selector, tolerations,
  affinity, …) or a ``timeout`` above ``max-revision-timeout-seconds`` is refused by Knative's
  webhook (``endpoints.sandbox.knative``); from 0.17 KServe reports it as ``PredictorReady=False``
  reason ``ReconcileFailed``, before only as an ``InternalError`` event. Never Ready.
- A storage URI the sandbox treats as unreachable — any URI whose bucket, host or first path
  segment starts with ``missing`` or ``unreachable`` (``s3://missing-bucket/model``,
  ``gs://unreachable/x``) — fails after the load delay with ``ModelLoadFailed``: the
  storage-initializer exits 1 and the pod sits in ``Init:CrashLoopBackOff``. So does an
  ``oci://`` URI while ``storageInitializer.enableModelcar`` is false ("Cannot recognize storage
  type for oci://…").
- Pods that fit no node (resources, node selector, taints; ``endpoints.sandbox.scheduler``) stay
  ``Pending`` with ``PodScheduled=False`` and a ``FailedScheduling`` event in the scheduler's words.
- ``serving.kserve.io/stop: "true"`` removes the pods and sets ``Stopped=True``.
- Changing ``serving.kserve.io/deploymentMode`` after the controller recorded it is denied
  at admission (403) from 0.15.1, as KServe's validating webhook does.

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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from endpoints.sandbox import knative, scheduler
from endpoints.sandbox import profile as profiles
from endpoints.sandbox.admission import KNATIVE_MODES, WEBHOOK_NAME, KServeWebhooks
from endpoints.sandbox.errors import ApiError
from endpoints.sandbox.selection import ModelRequest, Selection, select_runtime

logger = logging.getLogger(__name__)

FINALIZER = "inferenceservice.finalizers"
STOP_ANNOTATION = "serving.kserve.io/stop"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
SERVER_TYPE_ANNOTATION = "serving.kserve.io/server-type"
ISVC_LABEL = "serving.kserve.io/inferenceservice"
WATCHED_CONFIG = {(profiles.KSERVE_NAMESPACE, profiles.ISVC_CONFIG_NAME),
                  (profiles.KNATIVE_NAMESPACE, "config-features"), (profiles.KNATIVE_NAMESPACE, "config-defaults")}


@dataclass
class SandboxSettings:
    """How the simulated cluster behaves: delays, the ingress domain, and which KServe release it
    simulates (``profile``: a release-profile directory, None = the built-in one).
    ``default_deployment_mode`` overrides the release config's ``defaultDeploymentMode``."""

    ingress_domain: str = "example.com"
    default_deployment_mode: str | None = None
    load_seconds: float = 0.0
    ready_seconds: float = 0.0
    profile: str | Path | None = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def unreachable_storage(uri: str) -> bool:
    parsed = urlparse(uri or "")
    first = parsed.netloc or (parsed.path.strip("/").split("/") or [""])[0]
    return first.startswith(("missing", "unreachable"))


def unrecognised_storage_message(uri: str) -> str:
    """The KServe storage initializer's error for a URI scheme it has no handler for."""
    return (f"Cannot recognize storage type for {uri}\n'gs://', 's3://', 'file://', 'http(s)://' and 'hf://' "
            "are the current available storage type.")


class SandboxController:
    """Runs in a background thread beside a ``FakeApiServer``'s store."""

    def __init__(self, store, settings: SandboxSettings | None = None,
                 profile: profiles.ReleaseProfile | None = None):
        self.store = store
        self.settings = settings or SandboxSettings()
        if profile is None:
            profile = profiles.load(self.settings.profile or profiles.BUILTIN_PROFILE_DIR)
        self.profile = profile
        self.webhooks = KServeWebhooks(store, profile, self.settings.default_deployment_mode)
        self._queue: list[tuple[float, str, str]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._unsubscribe = None
        # (namespace, name) -> {"template": hash, "changed_at": monotonic, "revision": n, ...}
        self._tracked: dict[tuple[str, str], dict] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> SandboxController:
        # What the cluster holds before any InferenceService exists: the KServe and Knative
        # namespaces and ConfigMaps, the nodes, and the runtimes the release's installer creates.
        self.store.seed(self.profile.cluster_objects(), manager="cluster-installer")
        self.store.seed(self.profile.runtime_objects(), manager="kserve-installer")
        if hasattr(self.store, "add_admission"):
            self.store.add_admission("inferenceservices", mutate=self.default_isvc, validate=self.validate_isvc,
                                     name=WEBHOOK_NAME)
        self._unsubscribe = self.store.on_change(self._on_change)
        self._thread = threading.Thread(target=self._run, name="sandbox-kserve-controller", daemon=True)
        self._thread.start()
        self._enqueue_all()
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
        elif event.resource == "configmaps" and (event.namespace, event.name) in WATCHED_CONFIG:
            self._enqueue_all()  # KServe and Knative re-read their config on change
        elif event.resource in ("servingruntimes", "clusterservingruntimes") or (
                event.resource == "nodes" and _hash(_schedulable_view(event.object))
                != _hash(_schedulable_view(event.old_object))):
            self._enqueue_all()  # selection or placement may come out differently now

    def _enqueue_all(self) -> None:
        for obj in self.store.list("inferenceservices"):
            self._enqueue(obj["metadata"]["namespace"], obj["metadata"]["name"])

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
        """What the release's mutating webhook does to an InferenceService on admission."""
        self.webhooks.default(obj, old)

    def validate_isvc(self, obj: dict, old: dict | None) -> str | None:
        """What the release's validating webhook refuses (returns the denial message)."""
        return self.webhooks.validate(obj, old)

    # --- reconcile ---------------------------------------------------------------------------
    def _select_runtime(self, namespace: str, predictor: dict) -> Selection:
        """The runtime KServe would use for this predictor, or why there is none."""
        return select_runtime(ModelRequest.from_predictor(predictor),
                              namespaced=self.store.list("servingruntimes", namespace),
                              cluster=self.store.list("clusterservingruntimes"),
                              protocol_order=self.profile.protocol_order)

    def _runtime_object(self, namespace: str, selection: Selection) -> dict | None:
        if selection.kind == "ServingRuntime":
            return self.store.get("servingruntimes", namespace, selection.name)
        if selection.kind == "ClusterServingRuntime":
            return self.store.get("clusterservingruntimes", None, selection.name)
        return None

    def reconcile(self, namespace: str, name: str) -> None:
        obj = self.store.get("inferenceservices", namespace, name)
        key = (namespace, name)
        if obj is None:
            self._tracked.pop(key, None)
            if self._delete_pods(namespace, name):
                self._enqueue_others(key)
            return
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            if self._delete_pods(namespace, name):
                self._enqueue_others(key)
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
        annotations = meta.get("annotations") or {}
        template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
        template_hash = _hash([template, {k: v for k, v in annotations.items()
                                          if not k.startswith("inference-console.io/")}])
        track = self._tracked.setdefault(key, {"template": None, "revision": 0, "changed_at": time.monotonic(),
                                               "uid": meta.get("uid"), "latest_rolled": 0, "previous_rolled": 0})
        if track["uid"] != meta.get("uid"):
            track.update(template=None, revision=0, latest_rolled=0, previous_rolled=0, uid=meta.get("uid"))
        if track["template"] != template_hash:
            track["template"] = template_hash
            track["revision"] += 1
            track["changed_at"] = time.monotonic()
        status = self._status(obj, track)
        self._write_status(obj, status)
        if status.get("_next") is not None:
            self._enqueue(namespace, name, status["_next"])
        if status.get("_freed"):
            self._enqueue_others(key)

    def _enqueue_others(self, key: tuple[str, str]) -> None:
        """Pods went away: whatever was waiting for room may fit now."""
        for other in self.store.list("inferenceservices"):
            other_key = (other["metadata"]["namespace"], other["metadata"]["name"])
            if other_key != key:
                self._enqueue(*other_key)

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

    def _status(self, obj: dict, track: dict) -> dict:
        meta = obj["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        annotations = meta.get("annotations") or {}
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        model = predictor.get("model") or {}
        previous = obj.get("status") or {}
        facts = self.profile.facts
        mode = self.webhooks.resolve_mode(obj)
        knative_mode = mode in KNATIVE_MODES
        stopped = annotations.get(STOP_ANNOTATION) == "true"
        elapsed = time.monotonic() - track["changed_at"]
        ingress = self.webhooks.config_section("ingress")
        domain = (self.settings.ingress_domain if self.settings.ingress_domain != "example.com"
                  else ingress.get("ingressDomain") or self.settings.ingress_domain)
        scheme = ingress.get("urlScheme") or "http"
        revision_name = f"{name}-predictor-{track['revision']:05d}"
        status: dict = {"observedGeneration": meta.get("generation", 1)}
        if facts.records_mode_in_status:
            status["deploymentMode"] = mode
        events: list[tuple[str, str, str]] = []  # emitted only when the status actually changes
        previous_failure = (previous.get("modelStatus") or {}).get("lastFailureInfo") or {}

        def failure_time(reason: str) -> str:
            return previous_failure.get("time") if previous_failure.get("reason") == reason else _now()

        selection = self._select_runtime(namespace, predictor)
        if selection.kind == "ServingRuntime":
            status["servingRuntimeName"] = selection.name
        elif selection.kind == "ClusterServingRuntime":
            status["clusterServingRuntimeName"] = selection.name
        runtime = self._runtime_object(namespace, selection)
        min_replicas = predictor.get("minReplicas", 1)
        replicas = max(min_replicas, 1) if min_replicas else 0
        next_check = None
        pods: list[dict] = []
        refusal = knative.refusal(self.store, predictor) if knative_mode and not stopped else None
        storage_uri = model.get("storageUri", "")
        storage_failure = None
        if unreachable_storage(storage_uri):
            storage_failure = (f"storage-initializer: failed to download {storage_uri}: "
                               "the bucket or object does not exist or is not readable")
        elif storage_uri.startswith("oci://") and not self.webhooks.config_section("storageInitializer").get(
                "enableModelcar"):
            storage_failure = unrecognised_storage_message(storage_uri)
        conditions: dict[str, tuple[str, str, str]] | None

        if stopped:
            conditions = {"Ready": ("False", "Stopped", "The InferenceService is stopped"),
                          "PredictorReady": ("False", "Stopped", ""), "IngressReady": ("False", "Stopped", ""),
                          "Stopped": ("True", "", "")}
            status["modelStatus"] = {"transitionStatus": "UpToDate", "states": {"activeModelState": "",
                                                                                 "targetModelState": ""}}
        elif selection.reason:
            message = selection.message
            conditions = {"Ready": ("False", "PredictorNotReady", message),
                          "PredictorReady": ("False", selection.reason, message),
                          "IngressReady": ("False", "PredictorNotReady", "Predictor ingress not created"),
                          "Stopped": ("False", "", "")}
            status["modelStatus"] = {
                "transitionStatus": "InvalidSpec",
                "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": selection.reason, "message": message,
                                    "time": failure_time(selection.reason)},
            }
            events.append(("InternalError", message, "Warning"))
        elif refusal:
            message = f"fails to reconcile predictor: {refusal}"
            events.append(("InternalError", message, "Warning"))
            if facts.reports_reconcile_failure_in_conditions:
                conditions = {"Ready": ("False", "ReconcileFailed", message),
                              "PredictorReady": ("False", "ReconcileFailed", message),
                              "Stopped": ("False", "", "")}
            else:
                conditions = None  # the release leaves the conditions as they were
        elif elapsed < self.settings.load_seconds + self.settings.ready_seconds:
            loading = elapsed >= self.settings.load_seconds
            conditions = {"Ready": ("Unknown", "PredictorNotReady", "Waiting for the predictor to become ready"),
                          "PredictorReady": ("Unknown", "RevisionMissing" if knative_mode
                                             else "MinimumReplicasUnavailable",
                                             "Configuration is waiting for a Revision to become ready."),
                          "IngressReady": ("Unknown", "PredictorNotReady", ""),
                          "Stopped": ("False", "", "")}
            status["modelStatus"] = {"transitionStatus": "InProgress",
                                     "states": {"activeModelState": "", "targetModelState":
                                                "Loading" if loading else "Pending"}}
            pods = self._pods(obj, model, runtime, replicas, revision_name, phase="Pending", loading=loading)
            remaining = (self.settings.load_seconds + self.settings.ready_seconds) - elapsed
            next_check = min(remaining, max(self.settings.load_seconds - elapsed, 0.0) or remaining)
        elif storage_failure:
            message = storage_failure
            conditions = {"Ready": ("False", "PredictorNotReady", message),
                          "PredictorReady": ("False", "RevisionFailed" if knative_mode else "MinimumReplicasUnavailable",
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
            pods = self._pods(obj, model, runtime, max(replicas, 1), revision_name, phase="Pending",
                              failed_load=message)
            events.append(("InferenceServiceNotReady", f"InferenceService {name} is not ready: {message}", "Warning"))
        else:
            pods = self._pods(obj, model, runtime, replicas, revision_name, phase="Running")
            unschedulable = self._place(namespace, name, pods)
            if unschedulable:
                conditions = {"Ready": ("False", "PredictorNotReady", unschedulable),
                              "PredictorReady": ("False", "Unschedulable" if knative_mode
                                                 else "MinimumReplicasUnavailable", unschedulable),
                              "IngressReady": ("False", "PredictorNotReady", ""), "Stopped": ("False", "", "")}
                status["modelStatus"] = {"transitionStatus": "InProgress",
                                         "states": {"activeModelState": "", "targetModelState": "Pending"}}
            else:
                conditions = {"Ready": ("True", "", ""), "PredictorReady": ("True", "", ""),
                              "IngressReady": ("True", "", ""), "Stopped": ("False", "", "")}
                status["modelStatus"] = {"transitionStatus": "UpToDate",
                                         "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                                         "copies": {"failedCopies": 0, "totalCopies": replicas}}
                if not any(c["type"] == "Ready" and c["status"] == "True" for c in previous.get("conditions") or []):
                    events.append(("InferenceServiceReady", f"InferenceService [{name}] is Ready", "Normal"))
        if conditions is None:
            status["conditions"] = list(previous.get("conditions") or [])
            ready = False
        else:
            if knative_mode:
                conditions.update({
                    "PredictorConfigurationReady": conditions["PredictorReady"],
                    "PredictorRouteReady": ("True", "", "") if conditions["Ready"][0] == "True"
                    else conditions["Ready"],
                    "LatestDeploymentReady": conditions["PredictorReady"],
                    "RoutesReady": ("True", "", "") if conditions["Ready"][0] == "True" else conditions["Ready"],
                })
            status["conditions"] = self._conditions(previous.get("conditions"), conditions)
            ready = conditions["Ready"][0] == "True"

        host = f"{name}.{namespace}.{domain}" if knative_mode else f"{name}-{namespace}.{domain}"
        if ready or previous.get("url"):
            status["url"] = f"{scheme}://{host}"
            status["address"] = {"url": (f"http://{name}.{namespace}.svc.cluster.local" if knative_mode
                                         else f"http://{name}-predictor.{namespace}.svc.cluster.local")}
        component: dict = {}
        if knative_mode and not refusal:
            component = self._knative_component(obj, predictor, track, revision_name, ready, domain, scheme)
        if ready:
            component["url"] = f"{scheme}://{name}-predictor.{namespace}.{domain}"
            component["address"] = {"url": f"http://{name}-predictor.{namespace}.svc.cluster.local"}
        status["components"] = {"predictor": component}
        serving = track["latest_rolled"]
        if knative_mode and not stopped and not refusal and serving and serving != track["revision"]:
            # Knative keeps the rolled-out revision serving while the new one loads (or fails),
            # and beside it for the rest of the traffic during a canary.
            old_pods = self._pods(obj, model, runtime, replicas, f"{name}-predictor-{serving:05d}", phase="Running")
            self._place(namespace, name, old_pods, before=pods)
            pods = old_pods + pods
        status["_freed"] = self._sync_pods(namespace, name, pods)
        status["_next"] = next_check
        status["_events"] = events
        return status

    def _knative_component(self, obj, predictor, track, revision_name, ready, domain, scheme) -> dict:
        """Traffic and revisions as KServe's ksvc reconciler and PropagateStatus (0.20) set them."""
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        tags = ((obj["metadata"].get("annotations") or {}).get(TAG_ROUTING_ANNOTATION) == "true")
        component: dict = {"latestCreatedRevision": revision_name}
        latest, previous = track["latest_rolled"], track["previous_rolled"]

        def revision(number: int) -> str:
            return f"{name}-predictor-{number:05d}"

        def tag_url(tag: str) -> str:
            return f"{scheme}://{tag}-{name}-predictor.{namespace}.{domain}"

        if not ready:
            if latest:
                component["latestReadyRevision"] = revision(latest)
                component["latestRolledoutRevision"] = revision(latest)
                if previous:
                    component["previousRolledoutRevision"] = revision(previous)
            return component
        canary = predictor.get("canaryTrafficPercent")
        newest = track["revision"]
        head = {"revisionName": revision_name, "percent": 100, "latestRevision": True}
        if tags:
            head.update(tag="latest", url=tag_url("latest"))
        traffic = [head]
        if canary is not None and latest:
            # A split needs a rolled-out revision to split against: a first deploy takes 100%.
            head["percent"] = canary
            if canary < 100:
                traffic.append({"revisionName": revision(latest), "percent": 100 - canary, "latestRevision": False,
                                "tag": "prev", "url": tag_url("prev")})
        # PropagateStatus: a revision is rolled out when it takes 100%; a split of the rolled-out
        # revision over itself (a rollback without a new revision) rolls back to the previous one.
        on_newest = sum(t["percent"] for t in traffic if t["revisionName"] == revision_name)
        if latest != newest and head["percent"] == 100:
            previous, latest = latest, newest
        elif latest == newest and head["percent"] < 100 and on_newest == 100 and previous:
            latest = previous
        track["latest_rolled"], track["previous_rolled"] = latest, previous
        component["traffic"] = traffic
        component["latestReadyRevision"] = revision_name
        if latest:
            component["latestRolledoutRevision"] = revision(latest)
        if previous:
            component["previousRolledoutRevision"] = revision(previous)
        return component

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
    def _image(self, model: dict, runtime: dict | None) -> str:
        container = next((c for c in ((runtime or {}).get("spec") or {}).get("containers") or []
                          if c.get("name") == "kserve-container"), None)
        if model.get("image"):
            return model["image"]
        if not container or not container.get("image"):
            return "kserve/sandbox-model-server:latest"
        server_type = (((runtime or {}).get("metadata") or {}).get("annotations") or {}).get(
            SERVER_TYPE_ANNOTATION, "")
        return scheduler.container_image(container["image"], model.get("resources"), server_type,
                                         model.get("runtimeVersion"))

    def _resources(self, model: dict, runtime: dict | None) -> dict:
        """The kserve-container's resources: the model's, else the runtime container's."""
        if model.get("resources"):
            return json.loads(json.dumps(model["resources"]))
        container = next((c for c in ((runtime or {}).get("spec") or {}).get("containers") or []
                          if c.get("name") == "kserve-container"), None)
        return json.loads(json.dumps((container or {}).get("resources") or {}))

    def _pods(self, obj, model, runtime, count, revision_name, *, phase, loading=False,
              failed_load: str | None = None) -> list[dict]:
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        image = self._image(model, runtime)
        resources = self._resources(model, runtime)
        pods = []
        for index in range(count):
            container_status = {"name": "kserve-container", "ready": phase == "Running", "restartCount": 0,
                                "image": image,
                                "state": {"running": {}} if phase == "Running"
                                else {"waiting": {"reason": "PodInitializing"}}}
            init_state = ({"terminated": {"exitCode": 0, "reason": "Completed"}} if phase == "Running" or loading
                          else {"waiting": {"reason": "PodInitializing"}})
            if failed_load:
                init_state = {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off restarting failed container storage-initializer"}}
                container_status["state"] = {"waiting": {"reason": "PodInitializing"}}
            spec = {"containers": [{"name": "kserve-container", "image": image, "resources": resources}],
                    "initContainers": [{"name": "storage-initializer", "image": "kserve/storage-initializer"}]}
            for key in ("nodeSelector", "tolerations", "affinity", "runtimeClassName"):
                if predictor.get(key):
                    spec[key] = predictor[key]
            pods.append({
                "metadata": {"name": f"{revision_name}-deployment-{index}", "namespace": namespace,
                             "labels": {ISVC_LABEL: name, "component": "predictor"}},
                "spec": spec,
                "status": {"phase": phase, "conditions": [{"type": "PodScheduled", "status": "True"}],
                           "initContainerStatuses": [{"name": "storage-initializer", "ready": phase == "Running",
                                                      "restartCount": 3 if failed_load else 0,
                                                      "image": "kserve/storage-initializer",
                                                      "state": init_state,
                                                      **({"lastState": {"terminated": {
                                                          "exitCode": 1, "reason": "Error",
                                                          "message": failed_load}}}
                                                         if failed_load else {})}],
                           "containerStatuses": [container_status]},
            })
        return pods

    def _place(self, namespace: str, name: str, pods: list[dict], before: list[dict] = ()) -> str | None:
        """Bind ``pods`` to nodes (keeping the node of a pod that already runs); the scheduler's
        message for the first that fits nowhere (it and the rest stay Pending), else None."""
        nodes = self.store.list("nodes")
        bound = [p for p in self.store.list("pods")
                 if (p["metadata"].get("labels") or {}).get(ISVC_LABEL) != name
                 or p["metadata"]["namespace"] != namespace]
        bound += [p for p in before if (p.get("spec") or {}).get("nodeName")]
        failure = None
        for pod in pods:
            existing = self.store.get("pods", namespace, pod["metadata"]["name"])
            node_name = ((existing or {}).get("spec") or {}).get("nodeName")
            if node_name and any(n["metadata"]["name"] == node_name for n in nodes) and failure is None:
                pod["spec"]["nodeName"] = node_name
                bound.append(pod)
                continue
            placement = scheduler.schedule(pod, nodes, bound) if failure is None else None
            if placement is not None and placement.node:
                pod["spec"]["nodeName"] = placement.node
                bound.append(pod)
                continue
            failure = failure or placement.message
            pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                                 "reason": "Unschedulable", "message": failure}]}
        return failure

    def _sync_pods(self, namespace: str, name: str, pods: list[dict]) -> bool:
        """Make the stored pods of ``name`` the wanted ones; True if any pod went away."""
        wanted = {p["metadata"]["name"]: p for p in pods}
        freed = False
        for existing in self.store.list("pods", namespace, label_selector=f"{ISVC_LABEL}={name}"):
            if existing["metadata"]["name"] not in wanted:
                self.store.delete("pods", namespace, existing["metadata"]["name"])
                freed = True
        for pod in pods:
            current = self.store.get("pods", namespace, pod["metadata"]["name"])
            if current is not None and (current.get("spec") or {}).get("nodeName") and not pod["spec"].get("nodeName"):
                # A bound pod cannot be unbound: the kubelet lets it go and a new one is made.
                self.store.delete("pods", namespace, pod["metadata"]["name"])
                current, freed = None, True
            if current is None or _hash(current.get("status")) != _hash(pod["status"]) or \
                    _hash(current.get("spec", {}).get("nodeName")) != _hash(pod["spec"].get("nodeName")):
                self.store.set_pod(pod)
                unscheduled = next((c for c in pod["status"].get("conditions") or []
                                    if c.get("type") == "PodScheduled" and c.get("status") == "False"), None)
                if unscheduled and (current is None or _hash(current.get("status")) != _hash(pod["status"])):
                    self.store.add_event(pod, "FailedScheduling", unscheduled["message"], type="Warning",
                                         component="default-scheduler")
        return freed

    def _delete_pods(self, namespace: str, name: str) -> bool:
        pods = self.store.list("pods", namespace, label_selector=f"{ISVC_LABEL}={name}")
        for pod in pods:
            self.store.delete("pods", namespace, pod["metadata"]["name"])
        return bool(pods)


def _schedulable_view(node: dict | None) -> list:
    node = node or {}
    return [(node.get("metadata") or {}).get("labels"), node.get("spec"),
            (node.get("status") or {}).get("allocatable"), (node.get("status") or {}).get("conditions")]
