"""``ClusterClient``: the console's only way to talk to a Kubernetes cluster.

A thin layer over the official ``kubernetes`` client (``CustomObjectsApi`` for KServe kinds,
``CoreV1Api`` for core kinds) that speaks plain dicts and gives callers exactly two kinds of
failure to handle:

* ``TransientClusterError``: the request may succeed if retried later (connection refused,
  reset or dropped, timeouts, 429, 5xx, optimistic-concurrency conflicts during apply);
* ``PermanentClusterError``: retrying the same request will not help (400, 401, 403, 404 where
  the object had to exist, 409 outside apply, 422 with the API's field causes).

Design choices, each with a reason:

* Every constructor builds its own ``ApiClient``; the client library's global default
  configuration is never read or written, so several clusters can be used side by side.
* urllib3 retries are off. Silent retries would hide transient faults from the reconciler,
  which has its own backoff and must record what happened.
* Every call has a (connect, read) timeout, 10 s by default.
* Writes use server-side apply with field manager ``inference-console`` and ``force=true``
  (the console is the source of truth), plus ``fieldValidation=Strict`` so that a field the
  cluster's CRD does not know is an error instead of being silently pruned.
* Responses are read raw (``_preload_content=False``) and parsed as JSON. Besides giving plain
  dicts, this works around the kubernetes 37 client returning ``None`` for an apply that
  creates the object (HTTP 201 is missing from the generated response map).

No Django imports: the reconciler and the sandbox both use this module.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "inference-console"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "inference-console/0.1"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
ISVC_LABEL = "serving.kserve.io/inferenceservice"


# --- errors --------------------------------------------------------------------------------------


@dataclass
class ErrorCause:
    """One field-level cause from the API's Status (e.g. ``spec.predictor.minReplicas``)."""

    field: str
    message: str
    reason: str = ""


@dataclass
class ClusterError(Exception):
    """A failed cluster call: HTTP status (None for network failures), reason, message, causes."""

    message: str
    status: int | None = None
    reason: str = ""
    causes: list[ErrorCause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        prefix = f"{self.status} {self.reason}".strip() if self.status else self.reason or "error"
        text = f"{prefix}: {self.message}"
        if self.causes:
            text += " (" + "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in self.causes) + ")"
        return text


class TransientClusterError(ClusterError):
    """Retry later: network failure, timeout, throttling, server error or a lost update race."""


class PermanentClusterError(ClusterError):
    """Retrying will not help: the request or the credentials are wrong."""


# --- kinds -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API and how the client library names its core methods."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool
    core_name: str = ""  # e.g. "secret" -> read_namespaced_secret, "" for custom resources
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS = [
    Kind("InferenceService", "serving.kserve.io", "v1beta1", "inferenceservices", True, short_names=("isvc",)),
    Kind("ServingRuntime", "serving.kserve.io", "v1alpha1", "servingruntimes", True),
    Kind("ClusterServingRuntime", "serving.kserve.io", "v1alpha1", "clusterservingruntimes", False),
    Kind("InferenceGraph", "serving.kserve.io", "v1alpha1", "inferencegraphs", True, short_names=("ig",)),
    Kind("Secret", "", "v1", "secrets", True, "secret"),
    Kind("ServiceAccount", "", "v1", "serviceaccounts", True, "service_account", ("sa",)),
    Kind("Pod", "", "v1", "pods", True, "pod", ("po",)),
    Kind("Event", "", "v1", "events", True, "event", ("ev",)),
    Kind("Namespace", "", "v1", "namespaces", False, "namespace", ("ns",)),
    Kind("ConfigMap", "", "v1", "configmaps", True, "config_map", ("cm",)),
    Kind("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", True, "persistent_volume_claim", ("pvc",)),
    Kind("Node", "", "v1", "nodes", False, "node", ("no",)),
    Kind("CustomResourceDefinition", "apiextensions.k8s.io", "v1", "customresourcedefinitions", False,
         short_names=("crd",)),
]


def resolve_kind(name: str) -> Kind:
    """Look a kind up by kind, plural, singular or short name (case-insensitive)."""
    wanted = name.lower()
    for k in KINDS:
        if wanted in {k.kind.lower(), k.plural, *k.short_names}:
            return k
    raise ValueError(f"ClusterClient does not handle kind {name!r}")


# --- error classification ------------------------------------------------------------------------

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(exc: ApiException) -> int | None:
    try:
        value = (exc.headers or {}).get("Retry-After")
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify_api_exception(exc: ApiException, *, during_apply: bool = False) -> ClusterError:
    """Turn an ApiException into a Transient/PermanentClusterError carrying the API's Status."""
    body = _status_body(exc)
    status = exc.status or None
    reason = body.get("reason") or (exc.reason or "")
    message = body.get("message") or (exc.reason or "request failed")
    causes = [
        ErrorCause(field=c.get("field", ""), message=c.get("message", ""), reason=c.get("reason", ""))
        for c in (body.get("details") or {}).get("causes") or []
        if isinstance(c, dict)
    ]
    retry_after = _retry_after(exc)
    if retry_after is None:
        retry_after = (body.get("details") or {}).get("retryAfterSeconds")
    transient = status in _TRANSIENT_STATUS or (status == 409 and during_apply) or status == 410
    cls = TransientClusterError if transient else PermanentClusterError
    return cls(message=message, status=status, reason=reason, causes=causes, retry_after=retry_after)


def _network_error(exc: BaseException) -> TransientClusterError:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    text = str(exc)
    # NewConnectionError subclasses ConnectTimeoutError in urllib3, but a refused connection is no timeout.
    timed_out = not isinstance(exc, urllib3.exceptions.NewConnectionError) and isinstance(
        exc, urllib3.exceptions.TimeoutError | socket.timeout | TimeoutError)
    reason = "Timeout" if timed_out else "ConnectionError"
    return TransientClusterError(message=f"{type(exc).__name__}: {text}", status=None, reason=reason)


# --- the client ----------------------------------------------------------------------------------


def _new_configuration() -> k8s.Configuration:
    cfg = k8s.Configuration()
    # Retries off: the reconciler decides about retrying, with backoff, and records each failure.
    cfg.retries = False
    return cfg


class ClusterClient:
    """Plain-dict access to one cluster; see the module docstring for the contract."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float | None = None):
        self.api_client = api_client
        # Also for ApiClients built elsewhere: make sure urllib3 never retries behind our back.
        api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
        api_client.user_agent = USER_AGENT
        self.timeout = (connect_timeout or min(timeout, 5.0), timeout)
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.version_api = k8s.VersionApi(api_client)

    # --- constructors ------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(cls, path_or_text: str | Path, context: str | None = None, **kwargs: Any) -> ClusterClient:
        """From a kubeconfig file path or the kubeconfig's YAML text."""
        cfg = _new_configuration()
        text = str(path_or_text)
        if isinstance(path_or_text, Path) or ("\n" not in text and not text.lstrip().startswith("{")):
            api_client = k8s_config.new_client_from_config(
                config_file=text, context=context, persist_config=False, client_configuration=cfg)
        else:
            api_client = k8s_config.new_client_from_config_dict(
                config_dict=yaml.safe_load(text), context=context, persist_config=False, client_configuration=cfg)
        return cls(api_client, **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> ClusterClient:
        """From the pod's ServiceAccount token and CA (when the console runs inside the cluster)."""
        cfg = _new_configuration()
        k8s_config.load_incluster_config(client_configuration=cfg)
        return cls(k8s.ApiClient(configuration=cfg), **kwargs)

    @classmethod
    def for_url(cls, server_url: str, token: str | None = None, *, verify_ssl: bool = True,
                ca_cert: str | None = None, **kwargs: Any) -> ClusterClient:
        """For an API server URL with an optional bearer token (used for the sandbox)."""
        cfg = _new_configuration()
        cfg.host = server_url.rstrip("/")
        cfg.verify_ssl = verify_ssl
        if ca_cert:
            cfg.ssl_ca_cert = ca_cert
        if token:
            cfg.api_key = {"BearerToken": token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return cls(k8s.ApiClient(configuration=cfg), **kwargs)

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, during_apply: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Run one client call raw, parse the JSON body, classify any failure."""
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            data = response.data
        except ApiException as exc:
            raise classify_api_exception(exc, during_apply=during_apply) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _network_error(exc) from exc
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError as exc:
            raise TransientClusterError(message=f"unparseable response: {data[:200]!r}", reason="BadResponse") from exc

    def _method(self, verb: str, kind: Kind, namespaced: bool) -> Any:
        scope = "namespaced_" if namespaced else ""
        return getattr(self.core, f"{verb}_{scope}{kind.core_name}")

    @staticmethod
    def _identity(manifest: dict[str, Any]) -> tuple[Kind, str, str]:
        if not isinstance(manifest, dict):
            raise ValueError("manifest must be a dict")
        kind = resolve_kind(manifest.get("kind") or "")
        if manifest.get("apiVersion") != kind.api_version:
            raise ValueError(f"{kind.kind} must have apiVersion {kind.api_version}, not {manifest.get('apiVersion')!r}")
        meta = manifest.get("metadata") or {}
        name = meta.get("name") or ""
        namespace = meta.get("namespace") or ""
        if not name:
            raise ValueError("manifest has no metadata.name")
        if kind.namespaced and not namespace:
            raise ValueError(f"{kind.kind} {name!r} has no metadata.namespace")
        return kind, namespace, name

    # --- writes --------------------------------------------------------------------------------
    def apply(self, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply (field manager ``inference-console``, force); returns the resulting object."""
        kind, namespace, name = self._identity(manifest)
        options = {
            "field_manager": FIELD_MANAGER,
            "force": True,
            "field_validation": "Strict",
            "_content_type": APPLY_CONTENT_TYPE,
        }
        if dry_run:
            options["dry_run"] = "All"
        if kind.core_name:
            if kind.namespaced:
                result = self._call(self._method("patch", kind, True), name, namespace, manifest,
                                    during_apply=True, **options)
            else:
                result = self._call(self._method("patch", kind, False), name, manifest, during_apply=True, **options)
        elif kind.namespaced:
            result = self._call(self.custom.patch_namespaced_custom_object, kind.group, kind.version, namespace,
                                kind.plural, name, manifest, during_apply=True, **options)
        else:
            result = self._call(self.custom.patch_cluster_custom_object, kind.group, kind.version, kind.plural,
                                name, manifest, during_apply=True, **options)
        if not result and not dry_run:
            # Defensive: never hand back an empty object when the server answered without a body.
            result = self.get(kind.kind, namespace, name) or {}
        return result

    def dry_run_apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """What the server would store for this apply (``dryRun=All``); nothing is persisted."""
        return self.apply(manifest, dry_run=True)

    def apply_serving_runtime(self, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Apply a ServingRuntime or ClusterServingRuntime."""
        if manifest.get("kind") not in ("ServingRuntime", "ClusterServingRuntime"):
            raise ValueError(f"not a serving runtime: {manifest.get('kind')!r}")
        return self.apply(manifest, dry_run=dry_run)

    def delete(self, kind: str, namespace: str | None, name: str, *, dry_run: bool = False) -> bool:
        """Delete an object; False if it was already gone. With finalizers it is only marked for deletion."""
        k = resolve_kind(kind)
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        options: dict[str, Any] = {"body": body}
        if dry_run:
            options["dry_run"] = "All"
        try:
            if k.core_name:
                if k.namespaced:
                    self._call(self._method("delete", k, True), name, namespace, **options)
                else:
                    self._call(self._method("delete", k, False), name, **options)
            elif k.namespaced:
                self._call(self.custom.delete_namespaced_custom_object, k.group, k.version, namespace, k.plural,
                           name, **options)
            else:
                self._call(self.custom.delete_cluster_custom_object, k.group, k.version, k.plural, name, **options)
        except PermanentClusterError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- reads ----------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object as a dict, or None if it does not exist."""
        k = resolve_kind(kind)
        try:
            if k.core_name:
                if k.namespaced:
                    return self._complete(k, self._call(self._method("read", k, True), name, namespace))
                return self._complete(k, self._call(self._method("read", k, False), name))
            if k.namespaced:
                return self._call(self.custom.get_namespaced_custom_object, k.group, k.version, namespace,
                                  k.plural, name)
            return self._call(self.custom.get_cluster_custom_object, k.group, k.version, k.plural, name)
        except PermanentClusterError as exc:
            if exc.status == 404:
                return None
            raise

    @staticmethod
    def _complete(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        # Core list items come without apiVersion/kind; fill them in so every dict is self-describing.
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
        return obj

    def list(self, namespace: str | None, label_selector: str | None = None, *, kind: str = "InferenceService",
             field_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Objects of ``kind`` in ``namespace`` (all namespaces if None) and the list's resourceVersion."""
        k = resolve_kind(kind)
        options = {k2: v for k2, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v}
        if k.core_name:
            if k.namespaced and namespace:
                result = self._call(self._method("list", k, True), namespace, **options)
            elif k.namespaced:
                result = self._call(getattr(self.core, f"list_{k.core_name}_for_all_namespaces"), **options)
            else:
                result = self._call(self._method("list", k, False), **options)
        elif k.namespaced and namespace:
            result = self._call(self.custom.list_namespaced_custom_object, k.group, k.version, namespace, k.plural,
                                **options)
        else:
            result = self._call(self.custom.list_cluster_custom_object, k.group, k.version, k.plural, **options)
        items = [self._complete(k, item) for item in result.get("items") or []]
        return items, (result.get("metadata") or {}).get("resourceVersion", "")

    def events_for(self, namespace: str, name: str, kind: str = "InferenceService") -> list[dict[str, Any]]:
        """Core Events about one object (field selector on involvedObject), oldest first."""
        selector = f"involvedObject.name={name},involvedObject.kind={resolve_kind(kind).kind}"
        items, _ = self.list(namespace, kind="Event", field_selector=selector)
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def pods_for(self, namespace: str, isvc_name: str) -> list[dict[str, Any]]:
        """Pods KServe created for an InferenceService (label ``serving.kserve.io/inferenceservice``)."""
        items, _ = self.list(namespace, f"{ISVC_LABEL}={isvc_name}", kind="Pod")
        return items

    def pod_logs(self, namespace: str, pod: str, container: str | None = None, tail_lines: int | None = 50, *,
                 previous: bool = False, limit_bytes: int | None = None) -> str:
        """A container's log: the last ``tail_lines`` lines (None: all), of the previous
        (restarted) instance with ``previous``, at most ``limit_bytes`` bytes."""
        options: dict[str, Any] = {}
        if tail_lines is not None:
            options["tail_lines"] = tail_lines
        if container:
            options["container"] = container
        if previous:
            options["previous"] = True
        if limit_bytes is not None:
            options["limit_bytes"] = limit_bytes
        try:
            response = self.core.read_namespaced_pod_log(pod, namespace, _preload_content=False,
                                                         _request_timeout=self.timeout, **options)
            return response.data.decode("utf-8", errors="replace")
        except ApiException as exc:
            raise classify_api_exception(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _network_error(exc) from exc

    def get_namespace(self, name: str) -> dict[str, Any] | None:
        return self.get("Namespace", None, name)

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Create the namespace if missing (server-side apply, so existing labels of others survive)."""
        manifest: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if labels:
            manifest["metadata"]["labels"] = dict(labels)
        return self.apply(manifest)

    def server_version(self) -> dict[str, Any]:
        """The API server's ``/version`` document (gitVersion, major, minor, platform…)."""
        return self._call(self.version_api.get_code)
