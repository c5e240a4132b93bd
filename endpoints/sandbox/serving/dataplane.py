"""The sandbox's data plane: what the kubelet, Knative's activator and autoscaler and Istio's
ingress gateway do with the InferenceServices the simulated KServe controller manages.

- **Runtimes (the kubelet's part).** For every Running pod of a revision whose storage
  initializer really downloaded the model (``SandboxController.model_dir``) and whose format can
  run here (``runtimes.SERVABLE_FORMATS``), one model server process (``model_server.py`` in the
  runtime virtualenv) and one agent process (``agent.py``: KServe's agent, proxy + payload
  logger when ``spec.predictor.logger`` is set) on loopback ports: one pair per revision, the
  canary's and the primary's separately. When the revision's pods go (deleted, rolled out,
  scaled to zero), both processes are stopped.
- **The gateway (Istio's part).** ``gateway.Gateway`` (Envoy) gets its routes from the status:
  the InferenceService URL's host, the predictor host and Knative's tag hosts, the traffic
  split's percentages as weights, the agent of each revision as its upstream.
- **The activator and the autoscaler (Knative's part).** A revision in the traffic whose model
  server is not up yet (loading after Ready, or scaled to zero) is routed to the activator, a
  loopback HTTP server in this process that holds the request until the revision serves, then
  proxies it. A scale-to-zero InferenceService (Knative mode, ``minReplicas: 0``) whose
  revisions saw no request (Envoy's counters) for ``scale_to_zero_seconds`` is scaled to zero
  (``SandboxController.set_idle``); the first request after that starts it again — pods, the
  storage initializer's download, the model server — and the time it took is answered in the
  ``X-Sandbox-Cold-Start-Ms`` header of that request and recorded as a ``ColdStart`` event on
  the InferenceService (``kubectl describe``, the console's events).

Plain Python, no project imports (the sandbox rule).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from endpoints.sandbox.serving import gateway as gw
from endpoints.sandbox.serving import runtimes
from endpoints.sandbox.serving.agent import NoDelayConnection
from endpoints.sandbox.storage_entrypoint import is_loopback

logger = logging.getLogger(__name__)

ISVC_LABEL = "serving.kserve.io/inferenceservice"
KNATIVE_MODES = ("Serverless", "Knative")
COLD_START_HEADER = "X-Sandbox-Cold-Start-Ms"
AGENT_MODULE = "endpoints.sandbox.serving.agent"
REPO_ROOT = Path(__file__).resolve().parents[3]
RETRY_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@dataclass
class DataPlaneSettings:
    gateway_port: int = 0  # 0: no gateway
    authz_url: str = "http://127.0.0.1:8000"
    runtimes_venv: str | Path | None = None
    scale_to_zero_seconds: float = 60.0  # Knative: stable window 60 s (+ grace period)
    cold_start_timeout: float = 180.0
    runtime_timeout: float = 120.0
    logs_dir: str | Path | None = None
    idle_poll_seconds: float = 1.0
    # The agent's event senders (KServe's agent: 5). One suits a receiver that takes one write
    # at a time (the console's tests on SQLite's shared in-memory database).
    logger_workers: int = 5


@dataclass
class RevisionProcesses:
    """The model server and agent of one revision."""

    key: tuple[str, str, str]  # namespace, InferenceService, revision
    model_format: str
    model_dir: Path
    ready: threading.Event = field(default_factory=threading.Event)
    failed: str = ""
    failed_at: float = 0.0
    runtime: runtimes.RuntimeProcess | None = None
    agent: subprocess.Popen | None = None
    agent_port: int = 0
    started_at: float = field(default_factory=time.monotonic)
    ready_seconds: float = 0.0

    def stop(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        if self.runtime is not None:
            self.runtime.stop()


@dataclass
class Wake:
    """A scale-from-zero in progress (the activator's record of it)."""

    started: float
    done: threading.Event = field(default_factory=threading.Event)
    seconds: float = 0.0


class DataPlane:
    def __init__(self, controller, settings: DataPlaneSettings | None = None):
        self.controller = controller
        self.store = controller.store
        self.settings = settings or DataPlaneSettings()
        self.logs_dir = Path(self.settings.logs_dir or runtimes.DEFAULT_VAR_DIR / "sandbox-runtimes")
        self.gateway: gw.Gateway | None = None
        self._lock = threading.RLock()
        self._processes: dict[tuple[str, str, str], RevisionProcesses] = {}
        self._annotations: dict[tuple[str, str, str], dict[str, str]] = {}
        self._wakes: dict[tuple[str, str], Wake] = {}
        self._activity: dict[tuple[str, str], tuple[int, float]] = {}  # requests seen, when that changed
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-runtime")
        self._wanted = threading.Event()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._unsubscribe = None
        self._python: Path | None = None
        self._venv_error = ""
        self.activator: ThreadingHTTPServer | None = None

    # --- what really serves ------------------------------------------------------------------
    @staticmethod
    def servable(model_format: str) -> bool:
        return runtimes.servable(model_format)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> DataPlane:
        self.controller.serving = self
        self.activator = ThreadingHTTPServer(("127.0.0.1", 0), _activator_handler(self))
        self.activator.daemon_threads = True
        self._spawn(self.activator.serve_forever, "sandbox-activator")
        if self.settings.gateway_port:
            self.gateway = gw.Gateway(port=self.settings.gateway_port, authz_url=self.settings.authz_url,
                                      folder=self.logs_dir / "gateway").start()
        self._unsubscribe = self.store.on_change(self._on_change)
        self._spawn(self._sync_loop, "sandbox-data-plane")
        self._spawn(self._idle_loop, "sandbox-autoscaler")
        self.controller._enqueue_all()  # the status may now carry the simulated marker
        self._wanted.set()
        return self

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stopping = True
        if self._unsubscribe:
            self._unsubscribe()
        self._wanted.set()
        for thread in self._threads:
            if thread.name != "sandbox-activator":
                thread.join(timeout=5)
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            processes, self._processes = list(self._processes.values()), {}
        for entry in processes:
            entry.stop()
        if self.activator is not None:
            self.activator.shutdown()
            self.activator.server_close()
        if self.gateway is not None:
            self.gateway.stop()
        if self.controller.serving is self:
            self.controller.serving = None

    def _on_change(self, event) -> None:
        if event.resource in ("inferenceservices", "pods"):
            self._wanted.set()

    def _sync_loop(self) -> None:
        while not self._stopping:
            self._wanted.wait(timeout=5)
            self._wanted.clear()
            if self._stopping:
                return
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - the data plane must keep running
                logger.exception("sandbox data plane: sync failed")

    # --- desired state -------------------------------------------------------------------------
    def _python_or_none(self) -> Path | None:
        if self._python is None and not self._venv_error:
            try:
                self._python = runtimes.ensure_venv(self.settings.runtimes_venv)
            except runtimes.RuntimesUnavailable as exc:
                self._venv_error = str(exc)
                logger.error("sandbox data plane: no model runtimes, models are not served: %s", exc)
        return self._python

    def sync(self) -> None:
        desired: dict[tuple[str, str, str], tuple[dict, str, Path]] = {}
        seen: list[tuple[dict, str, set[str]]] = []
        for isvc in self.store.list("inferenceservices"):
            meta = isvc["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            namespace, name = meta["namespace"], meta["name"]
            predictor = (isvc.get("spec") or {}).get("predictor") or {}
            model_format = (((predictor.get("model") or {}).get("modelFormat") or {}).get("name") or "").lower()
            running = set()
            for pod in self.store.list("pods", namespace, label_selector=f"{ISVC_LABEL}={name}"):
                if (pod.get("status") or {}).get("phase") == "Running":
                    running.add(pod["metadata"]["name"].rsplit("-deployment-", 1)[0])
            for revision in running:
                key = (namespace, name, revision)
                self._annotations.setdefault(key, self._logged_annotations(isvc))
                model_dir = self.controller.model_dir(namespace, name, revision)
                if self.servable(model_format) and model_dir.is_dir() and any(model_dir.iterdir()):
                    desired[key] = (isvc, model_format, model_dir)
            seen.append((isvc, model_format, running))
        stopped = self._reconcile_processes(desired)
        # Routes first, then the processes of revisions that went: Envoy never sends a request
        # to an agent already stopped (a scale to zero routes to the activator before the
        # revision's processes stop, as Knative puts the activator in the path before it scales
        # a revision down).
        services = [service for isvc, model_format, running in seen
                    if (service := self._service(isvc, model_format, running, desired)) is not None]
        if self.gateway is not None:
            self.gateway.apply(gw.GatewayConfig(services))
        for entry in stopped:
            logger.info("sandbox data plane: stopping %s/%s %s", *entry.key)
            self._executor.submit(entry.stop)

    def _logged_annotations(self, isvc: dict) -> dict[str, str]:
        """The annotations the logger's ``metadataAnnotations`` names, as this revision's pods carry them."""
        logger_spec = ((isvc.get("spec") or {}).get("predictor") or {}).get("logger") or {}
        annotations = isvc["metadata"].get("annotations") or {}
        return {k: annotations[k] for k in logger_spec.get("metadataAnnotations") or [] if k in annotations}

    def _scales_to_zero(self, isvc: dict) -> bool:
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        mode = (isvc.get("status") or {}).get("deploymentMode") or (
            isvc["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode") or "Serverless"
        return predictor.get("minReplicas", 1) == 0 and mode in KNATIVE_MODES

    def _service(self, isvc: dict, model_format: str, running: set[str],
                 desired: dict) -> gw.Service | None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        status = isvc.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if not status.get("url") or not ready or not self.servable(model_format):
            return None
        component = (status.get("components") or {}).get("predictor") or {}
        traffic = component.get("traffic")
        if traffic is None:  # Standard mode: the running revision takes everything
            revision = max(running) if running else None
            traffic = [{"revisionName": revision, "percent": 100}] if revision else []
        idle = self._scales_to_zero(isvc) and bool((self.controller._tracked.get((namespace, name)) or {}).get("idle"))
        backends, tagged = [], []
        for entry in traffic:
            revision, percent = entry.get("revisionName"), int(entry.get("percent") or 0)
            key = (namespace, name, revision)
            backend = self._backend(key, percent, expected=key in desired or idle)
            if backend is None:
                continue
            backends.append(backend)
            if entry.get("url"):
                tagged.append((urlsplit(entry["url"]).hostname, gw.Backend(backend.cluster, backend.port, 100,
                                                                            backend.headers)))
        hosts = sorted({h for h in (urlsplit(status["url"]).hostname, urlsplit(component.get("url") or "").hostname)
                        if h})
        return gw.Service(namespace, name, tuple(hosts), tuple(backends), tuple(tagged))

    def _backend(self, key: tuple[str, str, str], percent: int, *, expected: bool) -> gw.Backend | None:
        with self._lock:
            entry = self._processes.get(key)
        cluster = ".".join(key)
        if entry is not None and entry.ready.is_set():
            return gw.Backend(f"{cluster}.agent", entry.agent_port, percent)
        if expected:  # loading, or scaled to zero: the activator holds the request
            return gw.Backend(f"{cluster}.activator", self.activator.server_address[1], percent,
                              ((gw.ACTIVATOR_HEADER, "/".join(key)),))
        return None

    def _reconcile_processes(self, desired: dict) -> list[RevisionProcesses]:
        """Start the revisions newly desired; take those no longer desired out of the table
        and return them (the caller stops them once the gateway no longer routes to them)."""
        with self._lock:
            gone = [key for key in self._processes if key not in desired]
            stopped = [self._processes.pop(key) for key in gone]
            starting = []
            for key, (isvc, model_format, model_dir) in desired.items():
                entry = self._processes.get(key)
                if entry is not None and entry.failed and time.monotonic() - entry.failed_at > RETRY_SECONDS:
                    self._processes.pop(key)
                    entry = None
                if entry is None:
                    entry = RevisionProcesses(key=key, model_format=model_format, model_dir=model_dir)
                    self._processes[key] = entry
                    starting.append((entry, isvc))
        for entry, isvc in starting:
            self._executor.submit(self._start_revision, entry, isvc)
        return stopped

    def _start_revision(self, entry: RevisionProcesses, isvc: dict) -> None:
        namespace, name, revision = entry.key
        python = self._python_or_none()
        if python is None:
            entry.failed, entry.failed_at = f"no model runtimes: {self._venv_error}", time.monotonic()
            return
        logs = self.logs_dir / namespace / name
        try:
            entry.runtime = runtimes.start(python=python, model_name=name, model_format=entry.model_format,
                                           model_dir=entry.model_dir, port=free_port(),
                                           log_path=logs / f"{revision}.model-server.log",
                                           timeout=self.settings.runtime_timeout)
            entry.agent_port = free_port()
            entry.agent = self._start_agent(entry, isvc, logs / f"{revision}.agent.log")
            if not _wait_port(entry.agent_port, entry.agent):
                raise runtimes.RuntimeStartError(f"the agent did not start (exit {entry.agent.poll()})")
        except (runtimes.RuntimeStartError, OSError) as exc:
            entry.failed, entry.failed_at = str(exc), time.monotonic()
            logger.error("sandbox data plane: %s/%s %s: %s", namespace, name, revision, exc)
            with contextlib.suppress(Exception):
                self.store.add_event(isvc, "ModelServerFailed", f"{revision}: {exc}"[:1000], type="Warning")
            entry.stop()
            return
        entry.ready_seconds = time.monotonic() - entry.started_at
        with self._lock:
            current = self._processes.get(entry.key) is entry
        if not current or self._stopping:  # went away while it started
            entry.stop()
            return
        logger.info("sandbox data plane: %s/%s %s serves %s on 127.0.0.1:%d (agent :%d), ready in %.2f s",
                    namespace, name, revision, entry.model_format, entry.runtime.port, entry.agent_port,
                    entry.ready_seconds)
        entry.ready.set()
        self._wanted.set()

    def _start_agent(self, entry: RevisionProcesses, isvc: dict, log_path: Path) -> subprocess.Popen:
        namespace, name, revision = entry.key
        logger_spec = ((isvc.get("spec") or {}).get("predictor") or {}).get("logger") or {}
        command = [sys.executable, "-m", AGENT_MODULE, "--port", str(entry.agent_port),
                   "--upstream-port", str(entry.runtime.port), "--inference-service", name, "--namespace", namespace]
        url = logger_spec.get("url") or ""
        if url and is_loopback(urlsplit(url).hostname):
            command += ["--logger-url", url, "--logger-mode", logger_spec.get("mode") or "all",
                        "--logger-workers", str(self.settings.logger_workers)]
            for header in logger_spec.get("metadataHeaders") or []:
                command += ["--metadata-header", header]
            for key, value in self._annotations.get(entry.key, {}).items():
                command += ["--annotation", f"{key}={value}"]
        elif url:
            logger.warning("sandbox data plane: %s/%s logs to %s, not a loopback address: not logged", namespace,
                           name, url)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                    cwd=str(REPO_ROOT), start_new_session=True)

    # --- the activator ---------------------------------------------------------------------------
    def wait_for(self, key: tuple[str, str, str]) -> tuple[RevisionProcesses | None, float | None]:
        """Hold until the revision serves: (its processes or None on timeout, the cold start's
        seconds if this request waited for a scale from zero)."""
        namespace, name, _ = key
        started = time.monotonic()
        woke = None
        if self.controller.set_idle(namespace, name, False):
            with self._lock:
                woke = self._wakes[(namespace, name)] = Wake(started=started)
            logger.info("sandbox activator: %s/%s scales from zero", namespace, name)
        else:
            with self._lock:
                woke = self._wakes.get((namespace, name))
        deadline = started + self.settings.cold_start_timeout
        while time.monotonic() < deadline and not self._stopping:
            with self._lock:
                entry = self._processes.get(key)
            if entry is not None and entry.failed:
                return entry, None  # the model server failed: answered at once, with the reason
            if entry is not None and entry.ready.wait(timeout=0.05):
                if woke is not None:
                    self._woken(namespace, name, key, woke)
                    return entry, woke.seconds
                return entry, None
            time.sleep(0.05)
        return None, None

    def _woken(self, namespace: str, name: str, key: tuple[str, str, str], wake: Wake) -> None:
        with self._lock:
            first = not wake.done.is_set()
            if first:
                wake.seconds = time.monotonic() - wake.started
                wake.done.set()
                self._wakes.pop((namespace, name), None)
                self._activity[(namespace, name)] = (-1, time.monotonic())
        if first:
            isvc = self.store.get("inferenceservices", namespace, name)
            if isvc is not None:
                self.store.add_event(isvc, "ColdStart", f"Revision {key[2]} scaled from zero: the first request "
                                     f"waited {wake.seconds:.2f} s (pod, storage initializer, model server)")

    # --- the autoscaler --------------------------------------------------------------------------
    def _idle_loop(self) -> None:
        while not self._stopping:
            time.sleep(self.settings.idle_poll_seconds)
            if self.gateway is None:
                continue
            try:
                self._scale_idle()
            except Exception:  # noqa: BLE001
                logger.exception("sandbox autoscaler failed")

    def _scale_idle(self) -> None:
        stats = self.gateway.stats("cluster.")
        now = time.monotonic()
        for isvc in self.store.list("inferenceservices"):
            namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
            if not self._scales_to_zero(isvc):
                continue
            with self._lock:
                entries = [e for k, e in self._processes.items() if k[:2] == (namespace, name)]
                waking = (namespace, name) in self._wakes
            if not entries or waking or not all(e.ready.is_set() for e in entries):
                continue
            prefix = f"cluster.{namespace}.{name}."
            total = sum(v for k, v in stats.items() if k.startswith(prefix) and k.endswith(".upstream_rq_total"))
            active = sum(v for k, v in stats.items() if k.startswith(prefix) and k.endswith(".upstream_rq_active"))
            seen, since = self._activity.get((namespace, name), (None, now))
            if total != seen or active:
                self._activity[(namespace, name)] = (total, now)
            elif now - since >= self.settings.scale_to_zero_seconds and self.controller.set_idle(namespace, name, True):
                logger.info("sandbox autoscaler: %s/%s idle for %.0f s, scaled to zero", namespace, name, now - since)
                self.store.add_event(isvc, "ScaledToZero", f"No request for {now - since:.0f} s: scaled to zero")


def _activator_handler(plane: DataPlane):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sandbox-activator"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format, *args):  # noqa: A002
            logger.debug("activator: " + format, *args)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = (self.headers.get(gw.ACTIVATOR_HEADER) or "").split("/")
            if len(target) != 3:
                return self._answer(404, [("Content-Type", "text/plain")], b"activator: no revision named\n")
            entry, cold = plane.wait_for(tuple(target))
            if entry is None or entry.failed:
                why = f": {entry.failed}" if entry is not None else f" within {plane.settings.cold_start_timeout:g} s"
                return self._answer(503, [("Content-Type", "text/plain")],
                                    f"activator: revision {target[2]} is not serving{why}\n".encode())
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length",
                                            gw.ACTIVATOR_HEADER)}
            connection = NoDelayConnection("127.0.0.1", entry.agent_port, timeout=300)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                status, answer_headers, data = answer.status, answer.getheaders(), answer.read()
            except (OSError, http.client.HTTPException) as exc:
                status, answer_headers, data = 502, [("Content-Type", "text/plain")], f"activator: {exc}\n".encode()
            finally:
                connection.close()
            extra = [(COLD_START_HEADER, str(round(cold * 1000)))] if cold is not None else []
            self._answer(status, [*answer_headers, *extra], data)

        def _answer(self, status: int, headers, data: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length", "date",
                                        "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler
