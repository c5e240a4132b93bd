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
- Downloads that can happen on this machine — ``s3://`` with an S3 endpoint on a loopback
  address, ``http(s)://`` to a loopback host — run KServe's real storage initializer
  (``endpoints.sandbox.storage_initializer``, PyPI kserve-storage) with the credentials KServe's
  pod mutator gives it (``endpoints.sandbox.credentials``): pods in ``Init:0/1`` while it runs;
  its exit code, termination message (the log's tail) and log on failure (``ModelLoadFailed``,
  ``Init:CrashLoopBackOff`` after the kubelet's first immediate restart, then back-off); a key
  missing from a referenced secret is ``CreateContainerConfigError``; a secret the ServiceAccount
  lists but that does not exist refuses the pods (KServe's pod mutator: ``secrets "x" not
  found``). A revision downloads when its pods start, never again while they run.
- Every other storage URI is simulated. One the sandbox treats as unreachable — any URI whose
  bucket, host or first path segment starts with ``missing`` or ``unreachable``
  (``s3://missing-bucket/model``, ``gs://unreachable/x``) — fails after the load delay with
  ``ModelLoadFailed``: the storage-initializer exits 1 and the pod sits in
  ``Init:CrashLoopBackOff``. So does an ``oci://`` URI while ``storageInitializer.enableModelcar``
  is false ("Cannot recognize storage type for oci://…").
- Pods that fit no node (resources, node selector, taints; ``endpoints.sandbox.scheduler``) stay
  ``Pending`` with ``PodScheduled=False`` and a ``FailedScheduling`` event in the scheduler's words.
- ``serving.kserve.io/stop: "true"`` removes the pods and sets ``Stopped=True``.
- Changing ``serving.kserve.io/deploymentMode`` after the controller recorded it is denied
  at admission (403) from 0.15.1, as KServe's validating webhook does.

Delays are configurable (zero in tests): ``load_seconds`` until the model is loading,
``ready_seconds`` until it is Ready (simulated downloads only: a real one takes its own time).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import logging
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from endpoints.sandbox import images, knative, scheduler, volumes
from endpoints.sandbox import profile as profiles
from endpoints.sandbox import storage_initializer as initializer
from endpoints.sandbox.admission import KNATIVE_MODES, WEBHOOK_NAME, KServeWebhooks
from endpoints.sandbox.credentials import (
    ContainerConfigError,
    CredentialBuilder,
    CredentialConfig,
    CredentialError,
    StorageCredentials,
    resolve,
)
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
    ``default_deployment_mode`` overrides the release config's ``defaultDeploymentMode``.

    The storage initializer: ``storage_initializer`` True runs KServe's real one (PyPI
    ``kserve-storage``) for every download that can happen on this machine (an ``s3://`` URI whose
    endpoint is a loopback address, an ``http(s)://`` URI to a loopback host), False never, None
    (the default) when its virtualenv exists or can be made (made on first need; if that fails
    the download is simulated and the reason logged). ``storage_initializer_venv``: where that
    virtualenv lives (default ``$SANDBOX_STORAGE_INITIALIZER_VENV``, else
    ``<repo>/var/kserve-storage``); ``models_dir``: where the downloads land, one directory per
    revision (default ``<repo>/var/sandbox-models``); ``storage_initializer_timeout``: seconds
    before a download is killed; ``storage_initializer_backoff``: the kubelet's first
    CrashLoopBackOff delay (doubling up to 300 s) before a failed download is tried again."""

    ingress_domain: str = "example.com"
    default_deployment_mode: str | None = None
    load_seconds: float = 0.0
    ready_seconds: float = 0.0
    profile: str | Path | None = None
    storage_initializer: bool | None = None
    storage_initializer_venv: str | Path | None = None
    models_dir: str | Path | None = None
    storage_initializer_timeout: float = 120.0
    storage_initializer_backoff: float = 10.0


STORAGE_INITIALIZER = "storage-initializer"
QUEUE_PROXY = "queue-proxy"
AGENT = "agent"
SIDECAR_IMAGES = {QUEUE_PROXY: "gcr.io/knative-releases/knative.dev/serving/cmd/queue", AGENT: "kserve/agent"}
REVISION_LABEL = "serving.knative.dev/revision"
# With a data plane: on an InferenceService whose model does not really serve here (status True,
# reason NoCPURuntime or NotDownloadable, message "simulated: no CPU runtime for <format>", …).
SIMULATED_CONDITION = "SandboxSimulated"
MAX_BACKOFF_SECONDS = 300.0


@dataclass
class PodStart:
    """One start of a revision's pods whose storage initializer runs for real: the credentials
    the pod mutator wrote into the pod, and each run of the init container."""

    revision: str
    uri: str
    credentials: StorageCredentials
    out_dir: Path
    # pending (not started), running, config-error (the kubelet cannot start it), succeeded,
    # failed (waiting for the back-off), unavailable (no kserve-storage: simulated instead)
    state: str = "pending"
    runs: int = 0  # runs started (the init container's restartCount is runs - 1)
    exit_code: int = 0
    message: str = ""  # the termination message, or the kubelet's CreateContainerConfigError
    log: str = ""
    retry_at: float = 0.0
    seconds: float = 0.0
    started_at: str = ""  # the current or last run, RFC 3339
    finished_at: str = ""
    history: list[tuple[int, float]] = field(default_factory=list)  # (exit code, seconds) per run


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _waiting_conditions(knative_mode: bool) -> dict[str, tuple[str, str, str]]:
    """The conditions of an InferenceService whose pods are starting (or loading the model)."""
    return {"Ready": ("Unknown", "PredictorNotReady", "Waiting for the predictor to become ready"),
            "PredictorReady": ("Unknown", "RevisionMissing" if knative_mode else "MinimumReplicasUnavailable",
                               "Configuration is waiting for a Revision to become ready."),
            "IngressReady": ("Unknown", "PredictorNotReady", ""),
            "Stopped": ("False", "", "")}


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
        # The real storage initializer: downloads run on worker threads, never on the API
        # server's or this controller's thread; a finished one re-queues its InferenceService.
        self._storage_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._processes: set = set()
        self._storage_off_reason: str | None = None
        self.models_dir = Path(self.settings.models_dir or initializer.DEFAULT_VAR_DIR / "sandbox-models")
        # The data plane (endpoints.sandbox.serving.dataplane) when one serves this cluster's
        # models: it answers which model formats really run here, and scales to zero.
        self.serving = None

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
        for process in list(self._processes):  # the storage initializers this controller started
            initializer.stop(process)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _on_change(self, event) -> None:
        if event.resource == "inferenceservices":
            self._enqueue(event.namespace, event.name)
        elif event.resource == "configmaps" and (event.namespace, event.name) in WATCHED_CONFIG:
            self._enqueue_all()  # KServe and Knative re-read their config on change
        elif event.resource == "persistentvolumeclaims" and not event.group:
            if event.type != "DELETED" and event.object is not None:
                volumes.bind(self.store, event.object)
            # A pod that waits for its claim is scheduled once the claim exists.
            for obj in self.store.list("inferenceservices", event.namespace):
                self._enqueue(event.namespace, obj["metadata"]["name"])
        elif event.resource in ("secrets", "serviceaccounts") and not event.group:
            # A refused pod is retried by its ReplicaSet, a CreateContainerConfigError by the
            # kubelet: both may get through once the secret or account is there.
            for obj in self.store.list("inferenceservices", event.namespace):
                self._enqueue(event.namespace, obj["metadata"]["name"])
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
            self._prune_models(namespace, name, keep=())
            if self._delete_pods(namespace, name):
                self._enqueue_others(key)
            return
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            if self._delete_pods(namespace, name):
                self._enqueue_others(key)
            self._prune_models(namespace, name, keep=())
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
                                               "uid": meta.get("uid"), "latest_rolled": 0, "previous_rolled": 0,
                                               "pod_starts": {}})
        if track["uid"] != meta.get("uid"):
            track.update(template=None, revision=0, latest_rolled=0, previous_rolled=0, uid=meta.get("uid"),
                         pod_starts={})
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

    def set_idle(self, namespace: str, name: str, idle: bool) -> bool:
        """Knative's autoscaler for a scale-to-zero InferenceService: ``idle`` removes its pods
        (the revision stays Ready, requests go to the activator), not idle starts them again (a
        new pod: the storage initializer downloads again). True if that changed anything."""
        track = self._tracked.get((namespace, name))
        if track is None or bool(track.get("idle")) == idle:
            return False
        track["idle"] = idle
        self._enqueue(namespace, name)
        return True

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
            if ctype in ("LatestDeploymentReady", "RoutesReady", "Stopped", SIMULATED_CONDITION):
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
        if not min_replicas and knative_mode and self.serving is not None:
            # Scale to zero with a data plane: Knative starts one pod (initial scale 1), the
            # autoscaler removes it once the revision is idle and the activator brings it back.
            replicas = 0 if track.get("idle") else 1
        next_check = None
        pods: list[dict] = []
        # KServe merges the runtime's volumes and pull secrets into the pod spec Knative checks.
        refusal = (knative.refusal(self.store, images.pod_fields(predictor, runtime))
                   if knative_mode and not stopped else None)
        claim = volumes.claim_of(model.get("storageUri", ""))
        missing_claim = (claim if claim and not stopped and not selection.reason and not refusal
                         and self.store.get("persistentvolumeclaims", namespace, claim) is None else None)
        pull_events = (images.pull_problem(self.store, namespace, self._image(model, runtime), predictor, runtime)
                       if not stopped and not selection.reason and not refusal else [])
        storage_uri = model.get("storageUri", "")
        storage_failure = None
        if unreachable_storage(storage_uri):
            storage_failure = (f"storage-initializer: failed to download {storage_uri}: "
                               "the bucket or object does not exist or is not readable")
        elif storage_uri.startswith("oci://") and not self.webhooks.config_section("storageInitializer").get(
                "enableModelcar"):
            storage_failure = unrecognised_storage_message(storage_uri)
        start: PodStart | CredentialError | None = None
        if not stopped and not selection.reason and not refusal:
            start = self._pod_start(obj, track, revision_name, storage_uri, replicas)
        else:
            track["pod_starts"] = {}  # no pods of this InferenceService run: the next start downloads again
        pod_logs: list[tuple[str, str]] = []
        runs = 0
        pod_events: list[tuple[str, str, str]] = []
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
        elif missing_claim:
            # The scheduler does not place a pod whose PersistentVolumeClaim does not exist.
            message = volumes.missing_claim_message(missing_claim, len(self.store.list("nodes")))
            pods = self._pods(obj, model, runtime, replicas, revision_name, phase="Pending")
            for pod in pods:
                pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                                     "reason": "Unschedulable", "message": message}]}
            conditions = self._unschedulable_conditions(message, knative_mode)
            status["modelStatus"] = {"transitionStatus": "InProgress",
                                     "states": {"activeModelState": "", "targetModelState": "Pending"}}
        elif pull_events and not self._place(namespace, name, pods := self._pods(
                obj, model, runtime, replicas, revision_name, phase="Pending")):
            # The kubelet cannot pull the image (no pull secret for its registry): the pods wait.
            images.waiting_for_pull(pods, self._image(model, runtime))
            conditions = _waiting_conditions(knative_mode)
            status["modelStatus"] = {"transitionStatus": "InProgress",
                                     "states": {"activeModelState": "", "targetModelState": "Pending"}}
            pod_events = [(p["metadata"]["name"], reason, message) for p in pods for reason, message in pull_events]
        elif isinstance(start, CredentialError):
            # KServe's pod mutator refused the pods: none exist, the ReplicaSet keeps retrying.
            message = start.denial
            if knative_mode:
                reason, shown = "RevisionFailed", f'Revision "{revision_name}" failed with message: {message}.'
            else:
                reason, shown = "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
            conditions = {"Ready": ("False", reason, shown), "PredictorReady": ("False", reason, shown),
                          "IngressReady": ("False", "PredictorNotReady", "Predictor ingress not created"),
                          "Stopped": ("False", "", "")}
            status["modelStatus"] = {"transitionStatus": "BlockedByFailedLoad" if knative_mode else "InProgress",
                                     "states": {"activeModelState": "", "targetModelState":
                                                "FailedToLoad" if knative_mode else "Pending"},
                                     "copies": {"totalCopies": 0}}
            events.append(("FailedCreate", f"Error creating: {message}", "Warning"))
        elif isinstance(start, PodStart):
            placed = self._pods(obj, model, runtime, replicas, revision_name, phase="Pending", start=start)
            unschedulable = self._place(namespace, name, placed)
            if unschedulable:
                pods = placed
                conditions = self._unschedulable_conditions(unschedulable, knative_mode)
                status["modelStatus"] = {"transitionStatus": "InProgress",
                                         "states": {"activeModelState": "", "targetModelState": "Pending"}}
            else:
                next_check = self._advance(start, obj, track)
                if start.state == "unavailable":  # no kserve-storage here: back to the simulation
                    track["pod_starts"].pop(track["revision"], None)
                    return self._status(obj, track)
                if start.state == "succeeded":
                    pods = self._pods(obj, model, runtime, replicas, revision_name, phase="Running", start=start)
                else:
                    pods = self._pods(obj, model, runtime, replicas, revision_name, phase="Pending", start=start)
                for pod, where in zip(pods, placed, strict=True):
                    pod["spec"]["nodeName"] = where["spec"].get("nodeName")
                # The log is the last finished run's (the kubelet restarts a failed init container
                # at once, so the next run may already be counted); an earlier run's becomes the
                # previous instance's log.
                runs = start.runs if start.state in ("failed", "succeeded") else start.runs - 1
                pod_logs = [(p["metadata"]["name"], start.log) for p in pods if runs]
                if start.state == "succeeded":
                    conditions = {"Ready": ("True", "", ""), "PredictorReady": ("True", "", ""),
                                  "IngressReady": ("True", "", ""), "Stopped": ("False", "", "")}
                    status["modelStatus"] = {"transitionStatus": "UpToDate",
                                             "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                                             "copies": {"failedCopies": 0, "totalCopies": replicas}}
                    if previous_failure:  # KServe never clears it: a recovered model still shows it
                        status["modelStatus"]["lastFailureInfo"] = previous_failure
                    if not any(c["type"] == "Ready" and c["status"] == "True"
                               for c in previous.get("conditions") or []):
                        events.append(("InferenceServiceReady", f"InferenceService [{name}] is Ready", "Normal"))
                elif start.state == "failed" or (start.state == "running" and start.runs > 1):
                    # KServe reports the last failure until a run succeeds (a restart that is
                    # still running leaves the status as it was).
                    message = start.message
                    conditions = {"Ready": ("False", "PredictorNotReady", message),
                                  "PredictorReady": ("False", "RevisionFailed" if knative_mode
                                                     else "MinimumReplicasUnavailable", message),
                                  "IngressReady": ("False", "PredictorNotReady", "Predictor ingress not created"),
                                  "Stopped": ("False", "", "")}
                    status["modelStatus"] = {
                        "transitionStatus": "BlockedByFailedLoad",
                        "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                        "lastFailureInfo": {"location": f"{revision_name}-deployment", "reason": "ModelLoadFailed",
                                            "message": message, "modelRevisionName": revision_name,
                                            "exitCode": start.exit_code, "time": failure_time("ModelLoadFailed")},
                        "copies": {"failedCopies": max(replicas, 1), "totalCopies": 0},
                    }
                    if start.state == "running" and not facts.holds_failure_while_restarting:
                        status["modelStatus"].update(transitionStatus="InProgress", states={
                            "activeModelState": "", "targetModelState": "Loading"})
                    events.append(("InferenceServiceNotReady", f"InferenceService {name} is not ready: {message}",
                                   "Warning"))
                    if start.state == "failed":
                        pod_events = [(p["metadata"]["name"], "BackOff",
                                       f"Back-off restarting failed container {STORAGE_INITIALIZER} in pod "
                                       f"{p['metadata']['name']}_{namespace}") for p in pods]
                else:  # pending, running the first time, or the kubelet cannot start it
                    conditions = _waiting_conditions(knative_mode)
                    status["modelStatus"] = {"transitionStatus": "InProgress",
                                             "states": {"activeModelState": "", "targetModelState":
                                                        "Pending" if start.state == "config-error" else "Loading"}}
                    if start.state == "config-error":
                        pod_events = [(p["metadata"]["name"], "Failed", f"Error: {start.message}") for p in pods]
        elif elapsed < self.settings.load_seconds + self.settings.ready_seconds:
            loading = elapsed >= self.settings.load_seconds
            conditions = _waiting_conditions(knative_mode)
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
                conditions = self._unschedulable_conditions(unschedulable, knative_mode)
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
            simulated = self._simulated_reason(model, start, stopped or bool(selection.reason) or bool(refusal)
                                              or bool(track.get("idle")))
            if simulated:
                conditions[SIMULATED_CONDITION] = ("True", "NoCPURuntime" if simulated.startswith(
                    "simulated: no CPU runtime") else "NotDownloadable", simulated)
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
            served = (track.get("pod_starts") or {}).get(serving)
            old_pods = self._pods(obj, model, runtime, replicas, f"{name}-predictor-{serving:05d}", phase="Running",
                                  start=served if served is not None and served.state == "succeeded" else None)
            self._place(namespace, name, old_pods, before=pods)
            pods = old_pods + pods
        status["_freed"] = self._sync_pods(namespace, name, pods)
        for pod_name, text in pod_logs:
            if self.store.get("pods", namespace, pod_name) is not None:
                self.store.set_pod_log(namespace, pod_name, text, container=STORAGE_INITIALIZER, run=runs)
        for pod_name, reason, message in pod_events:
            pod = self.store.get("pods", namespace, pod_name)
            if pod is not None:
                self.store.add_event(pod, reason, message, type="Warning", component="kubelet")
        self._prune_models(namespace, name, keep={p["metadata"]["name"].rsplit("-deployment-", 1)[0] for p in pods})
        status["_next"] = next_check
        status["_events"] = events
        return status

    def _simulated_reason(self, model: dict, start, not_running: bool) -> str:
        """With a data plane: why this InferenceService's model does not really serve ("" if it
        does, or nothing runs anyway)."""
        if self.serving is None or not_running:
            return ""
        model_format = ((model.get("modelFormat") or {}).get("name") or "").lower()
        if not self.serving.servable(model_format):
            return f"simulated: no CPU runtime for {model_format or 'this model'}"
        if not isinstance(start, PodStart) and not isinstance(start, CredentialError):
            uri = model.get("storageUri") or "(none)"
            return f"simulated: the sandbox cannot download {uri} (only a loopback S3 endpoint or web server)"
        return ""

    def _unschedulable_conditions(self, message: str, knative_mode: bool) -> dict[str, tuple[str, str, str]]:
        return {"Ready": ("False", "PredictorNotReady", message),
                "PredictorReady": ("False", "Unschedulable" if knative_mode else "MinimumReplicasUnavailable", message),
                "IngressReady": ("False", "PredictorNotReady", ""), "Stopped": ("False", "", "")}

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
              failed_load: str | None = None, start: PodStart | None = None) -> list[dict]:
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        image = self._image(model, runtime)
        resources = self._resources(model, runtime)
        knative_mode = self.webhooks.resolve_mode(obj) in KNATIVE_MODES
        modelcar = bool(self.webhooks.config_section("storageInitializer").get("enableModelcar"))
        # The containers KServe's pod mutator and Knative put beside the model server.
        sidecars = [c for c, wanted in ((QUEUE_PROXY, knative_mode),
                                        (AGENT, bool(predictor.get("logger") or predictor.get("batcher")))) if wanted]
        with_init = self._injects_storage_initializer(model.get("storageUri", ""), modelcar) or start is not None
        pods = []
        for index in range(count):
            container_status = {"name": "kserve-container", "ready": phase == "Running", "restartCount": 0,
                                "image": image,
                                "state": {"running": {}} if phase == "Running"
                                else {"waiting": {"reason": "PodInitializing"}}}
            sidecar_statuses = [{"name": c, "ready": phase == "Running", "restartCount": 0, "image": SIDECAR_IMAGES[c],
                                 "state": {"running": {}} if phase == "Running"
                                 else {"waiting": {"reason": "PodInitializing"}}} for c in sidecars]
            init_state = ({"terminated": {"exitCode": 0, "reason": "Completed"}} if phase == "Running" or loading
                          else {"waiting": {"reason": "PodInitializing"}})
            if failed_load:
                init_state = {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off restarting failed container storage-initializer"}}
                container_status["state"] = {"waiting": {"reason": "PodInitializing"}}
            spec = {"containers": [{"name": "kserve-container", "image": image, "resources": resources},
                                   *({"name": c, "image": SIDECAR_IMAGES[c]} for c in sidecars)],
                    "initContainers": [{"name": "storage-initializer", "image": "kserve/storage-initializer"}]}
            for key in ("nodeSelector", "tolerations", "affinity", "runtimeClassName"):
                if predictor.get(key):
                    spec[key] = predictor[key]
            if claim := volumes.claim_of(model.get("storageUri", "")):  # KServe mounts the claim read-only
                spec["volumes"] = [volumes.pod_volume(claim)]
                spec["containers"][0]["volumeMounts"] = [{"name": volumes.PVC_VOLUME, "mountPath": volumes.PVC_MOUNT,
                                                          "readOnly": True}]
            labels = {ISVC_LABEL: name, "component": "predictor", **images.simulated_labels(runtime)}
            if knative_mode:
                labels[REVISION_LABEL] = revision_name
            pods.append({
                "metadata": {"name": f"{revision_name}-deployment-{index}", "namespace": namespace, "labels": labels},
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
                           "containerStatuses": [container_status, *sidecar_statuses]},
            })
            if not with_init:  # nothing to download (no storageUri, pvc://, a modelcar): no init container
                del pods[-1]["spec"]["initContainers"], pods[-1]["status"]["initContainerStatuses"]
            if start is not None:
                self._with_storage_initializer(pods[-1], start)
        return pods

    def _with_storage_initializer(self, pod: dict, start: PodStart) -> None:
        """The init container as KServe's pod mutator wrote it and as the kubelet reports it
        for the current run of the real storage initializer."""
        credentials = start.credentials
        init = pod["spec"]["initContainers"][0]
        init.update(args=[start.uri, initializer.MOUNT_PATH], terminationMessagePolicy="FallbackToLogsOnError")
        if credentials.env:
            init["env"] = credentials.env_manifest()
        init["volumeMounts"] = [*credentials.volume_mounts(),
                                {"name": "kserve-provision-location", "mountPath": initializer.MOUNT_PATH}]
        pod["spec"]["serviceAccountName"] = credentials.service_account
        pod["spec"]["volumes"] = [*credentials.pod_volumes(), {"name": "kserve-provision-location", "emptyDir": {}}]
        status = pod["status"]["initContainerStatuses"][0]
        status.pop("lastState", None)
        status["restartCount"] = max(start.runs - 1, 0)
        times = {"startedAt": start.started_at, "finishedAt": start.finished_at} if start.finished_at else {}
        last = {"terminated": {"exitCode": start.exit_code, "reason": "Error", "message": start.message, **times}}
        if start.state == "succeeded":
            status["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", **times}}
        elif start.state == "running":
            status["state"] = {"running": {"startedAt": start.started_at}}
            if start.runs > 1:
                status["lastState"] = last
        elif start.state == "config-error":
            status["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": start.message}}
        elif start.state == "failed" and start.runs == 1:
            status["state"] = last  # the kubelet restarts it at once; back-off starts with the next failure
        elif start.state == "failed":
            delay = round(min(self.settings.storage_initializer_backoff * 2 ** (start.runs - 2), MAX_BACKOFF_SECONDS))
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                           f"back-off {delay}s restarting failed container={STORAGE_INITIALIZER} "
                                           f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"}}
            status["lastState"] = last
        else:
            status["state"] = {"waiting": {"reason": "PodInitializing"}}
        status["ready"] = start.state == "succeeded"

    # --- the real storage initializer --------------------------------------------------------
    def model_dir(self, namespace: str, name: str, revision: str) -> Path:
        """Where the storage initializer of ``revision`` downloads to (the pod's /mnt/models)."""
        return self.models_dir / namespace / name / revision

    def _prune_models(self, namespace: str, name: str, keep) -> None:
        """A revision's download goes with its pods (an emptyDir)."""
        root = self.models_dir / namespace / name
        if not root.is_dir():
            return
        for child in root.iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
        if not keep:
            with contextlib.suppress(OSError):
                root.rmdir()

    def _venv(self) -> Path:
        return Path(self.settings.storage_initializer_venv) if self.settings.storage_initializer_venv \
            else initializer.default_venv()

    def _storage_enabled(self) -> bool:
        setting = self.settings.storage_initializer
        if setting is not None:
            return setting
        if self._storage_off_reason is None and not (initializer.installed_version(self._venv())
                                                     or initializer.creatable()):
            self._storage_off("this Python cannot create a virtualenv with pip (venv/ensurepip missing)")
        return self._storage_off_reason is None

    def _storage_off(self, reason: str) -> None:
        if self._storage_off_reason is None:
            self._storage_off_reason = reason
            logger.warning("sandbox controller: KServe's storage initializer is off, downloads are simulated: %s",
                           reason)

    @staticmethod
    def _injects_storage_initializer(uri: str, modelcar: bool) -> bool:
        """Whether KServe's pod mutator adds the storage-initializer (and so asks for credentials)."""
        if not uri or uri.startswith("pvc://"):
            return False
        return not (uri.startswith("oci") and modelcar)

    def _credentials(self, obj: dict) -> StorageCredentials:
        namespace = obj["metadata"]["namespace"]
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        builder = CredentialBuilder(self.profile.facts, CredentialConfig.from_configmap(self.webhooks.isvc_config()))
        return builder.build(namespace=namespace, annotations=obj["metadata"].get("annotations"),
                             service_account_name=predictor.get("serviceAccountName"),
                             get_service_account=lambda n: self.store.get("serviceaccounts", namespace, n),
                             get_secret=lambda n: self.store.get("secrets", namespace, n))

    def _pod_start(self, obj: dict, track: dict, revision_name: str, uri: str,
                   replicas: int) -> PodStart | CredentialError | None:
        """The current revision's pods as KServe's pod mutator admits them: refused
        (``CredentialError``), with the real storage initializer (``PodStart``), or None when
        there is nothing to download or it cannot happen here (the simulation decides)."""
        starts = track.setdefault("pod_starts", {})
        modelcar = bool(self.webhooks.config_section("storageInitializer").get("enableModelcar"))
        if replicas == 0 or not self._injects_storage_initializer(uri, modelcar):
            starts.clear()
            return None
        for revision in [r for r in starts if r not in (track["revision"], track["latest_rolled"])]:
            del starts[revision]  # its pods are gone (the rolled-out revision's still serve)
        if track["revision"] in starts:
            return starts[track["revision"]]
        try:
            credentials = self._credentials(obj)
        except CredentialError as exc:
            return exc
        plain = {var.name: var.value or "" for var in credentials.env if var.secret is None}
        if not initializer.runnable_here(uri, plain) or not self._storage_enabled():
            return None
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        for line in credentials.log:  # what KServe's CredentialBuilder logs
            logger.debug("sandbox pod mutator %s/%s %s: %s", namespace, name, revision_name, line)
        start = PodStart(revision=revision_name, uri=uri, credentials=credentials,
                         out_dir=self.model_dir(namespace, name, revision_name))
        starts[track["revision"]] = start
        return start

    def _advance(self, start: PodStart, obj: dict, track: dict) -> float | None:
        """Start (or restart, after its back-off) the init container; seconds until the next
        look, if the controller must come back by itself."""
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        with self._storage_lock:
            if start.state == "failed" and time.monotonic() < start.retry_at:
                return start.retry_at - time.monotonic()
            if start.state not in ("pending", "config-error", "failed"):
                return None
            # The kubelet reads the referenced secrets each time it starts the container.
            mounts = Path(tempfile.mkdtemp(prefix="sandbox-storage-secrets-"))
            try:
                env = resolve(start.credentials, namespace=namespace, mount_root=mounts,
                              get_secret=lambda n: self.store.get("secrets", namespace, n))
            except ContainerConfigError as exc:
                shutil.rmtree(mounts, ignore_errors=True)
                start.state, start.message = "config-error", str(exc)
                return None
            start.state = "running"
            start.runs += 1
            start.started_at = _now()
            fresh = start.runs == 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-storage-initializer")
        self._executor.submit(self._download, (namespace, name), start, env, mounts, fresh)
        return None

    def _download(self, key: tuple[str, str], start: PodStart, env: dict[str, str], mounts: Path,
                  fresh: bool) -> None:
        """One run of the storage initializer (a worker thread)."""
        try:
            try:
                python = initializer.ensure_venv(self._venv())
            except initializer.StorageInitializerUnavailable as exc:
                if self.settings.storage_initializer is None:
                    self._storage_off(str(exc))
                    with self._storage_lock:
                        start.state = "unavailable"
                    return
                result = initializer.Result(exit_code=1, log=f"sandbox: {exc}\n", seconds=0.0)
            else:
                if self._stopping:
                    return
                if fresh:  # a new pod's emptyDir
                    shutil.rmtree(start.out_dir, ignore_errors=True)
                result = initializer.run(start.uri, start.out_dir, env, python=python, processes=self._processes,
                                         timeout=self.settings.storage_initializer_timeout)
            logger.info("sandbox storage initializer %s/%s %s run %d: exit %d in %.2f s", *key, start.revision,
                        start.runs, result.exit_code, result.seconds)
            with self._storage_lock:
                start.exit_code, start.log, start.seconds = result.exit_code, result.log, result.seconds
                start.finished_at = _now()
                start.history.append((result.exit_code, result.seconds))
                if result.exit_code == 0:
                    start.state, start.message = "succeeded", ""
                else:
                    delay = 0.0 if start.runs == 1 else min(
                        self.settings.storage_initializer_backoff * 2 ** (start.runs - 2), MAX_BACKOFF_SECONDS)
                    start.state, start.message = "failed", result.termination_message
                    start.retry_at = time.monotonic() + delay
        except Exception as exc:  # noqa: BLE001 - a broken run is a failed container, never a dead worker
            logger.exception("sandbox storage initializer failed on %s/%s", *key)
            with self._storage_lock:
                start.state, start.exit_code = "failed", 1
                start.message = start.log = f"sandbox: the storage initializer could not run: {exc}\n"
                start.retry_at = time.monotonic() + self.settings.storage_initializer_backoff
        finally:
            shutil.rmtree(mounts, ignore_errors=True)
            if not self._stopping:
                self._enqueue(*key)

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
                stored = self.store.set_pod(pod)
                self._kubelet_events(current, stored)
                unscheduled = next((c for c in pod["status"].get("conditions") or []
                                    if c.get("type") == "PodScheduled" and c.get("status") == "False"), None)
                if unscheduled and (current is None or _hash(current.get("status")) != _hash(pod["status"])):
                    self.store.add_event(stored, "FailedScheduling", unscheduled["message"], type="Warning",
                                         component="default-scheduler")
        return freed

    def _kubelet_events(self, before: dict | None, pod: dict) -> None:
        """What the scheduler and the kubelet report as a pod is bound and its containers
        start (Scheduled; Pulled, Created, Started per container), and the first lines the
        running containers write."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        node = spec.get("nodeName")
        if node and not ((before or {}).get("spec") or {}).get("nodeName"):
            self.store.add_event(pod, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
                                 component="default-scheduler")
            for container in spec.get("initContainers") or []:
                self._container_start_events(pod, container)
        if (pod.get("status") or {}).get("phase") == "Running" and \
                ((before or {}).get("status") or {}).get("phase") != "Running":
            for container in spec.get("containers") or []:
                self._container_start_events(pod, container)
                text = _startup_log(container["name"], meta)
                if text:
                    self.store.set_pod_log(meta["namespace"], meta["name"], text, container=container["name"])

    def _container_start_events(self, pod: dict, container: dict) -> None:
        name = container.get("name", "")
        self.store.add_event(pod, "Pulled", f'Container image "{container.get("image", "")}" already present on machine',
                             component="kubelet")
        self.store.add_event(pod, "Created", f"Created container {name}", component="kubelet")
        self.store.add_event(pod, "Started", f"Started container {name}", component="kubelet")

    def _delete_pods(self, namespace: str, name: str) -> bool:
        pods = self.store.list("pods", namespace, label_selector=f"{ISVC_LABEL}={name}")
        for pod in pods:
            self.store.delete("pods", namespace, pod["metadata"]["name"])
        return bool(pods)


def _startup_log(container: str, meta: dict) -> str:
    """Plausible first lines of a running container of the simulation (no process runs here)."""
    isvc = (meta.get("labels") or {}).get(ISVC_LABEL, "")
    stamp = _now()
    if container == "kserve-container":
        return (f"{stamp} INFO model server: loading model {isvc!r} from /mnt/models\n"
                f"{stamp} INFO model server: model {isvc!r} is ready\n"
                f"{stamp} INFO model server: listening on http://0.0.0.0:8080 (REST) and :8081 (gRPC)\n")
    if container == QUEUE_PROXY:
        return (f'{{"severity":"INFO","timestamp":"{stamp}","message":"queue-proxy started, '
                f'proxying to 127.0.0.1:8080"}}\n')
    if container == AGENT:
        return f"{stamp} INFO agent: forwarding requests to 127.0.0.1:8080, logging payloads\n"
    return ""


def _schedulable_view(node: dict | None) -> list:
    node = node or {}
    return [(node.get("metadata") or {}).get("labels"), node.get("spec"),
            (node.get("status") or {}).get("allocatable"), (node.get("status") or {}).get("conditions")]
