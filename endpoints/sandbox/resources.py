"""The resource types the fake API server serves, and what it knows about each.

A ``ResourceType`` carries what discovery, routing, validation, server-side apply, field
selectors and ``kubectl get`` tables need: group/version/plural/kind, scope, short names, the
structural schema, whether ``/status`` is a subresource, and printer columns.

Built in: core/v1 Namespaces, Secrets, ConfigMaps, ServiceAccounts, Events, Pods, Nodes, and the KServe kinds
InferenceService (serving.kserve.io/v1beta1), ServingRuntime and ClusterServingRuntime
(v1alpha1) from the CRDs ``crdgen`` generates. ``types_from_crd`` turns a CustomResourceDefinition
document into a ``ResourceType`` that replaces the built-in one (or adds a new kind).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .crdgen import builtin_crds
from .errors import ApiError
from .schema import Schema, load_own_schema


@dataclass
class Column:
    """A ``kubectl get`` column: a JSONPath into the object, or a function of it."""

    name: str
    type: str = "string"
    json_path: str = ""
    func: Callable[[dict], Any] | None = None
    description: str = ""
    priority: int = 0
    format: str = ""

    def value(self, obj: dict) -> Any:
        if self.func is not None:
            return self.func(obj)
        results = jsonpath(obj, self.json_path)
        if not results:
            return None
        value = results[0] if len(results) == 1 else ",".join(str(r) for r in results)
        if self.type == "date" and isinstance(value, str):
            return human_age(value)
        return value


@dataclass
class ResourceType:
    """One served resource (e.g. ``inferenceservices.serving.kserve.io``)."""

    group: str
    versions: list[str]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    schemas: dict[str, Schema] = field(default_factory=dict)
    status_subresource: bool = False
    columns: dict[str, list[Column]] = field(default_factory=dict)
    strategic_merge: bool = False
    selectable_fields: dict[str, Callable[[dict], Any]] = field(default_factory=dict)
    from_crd: bool = False

    @property
    def version(self) -> str:
        """The preferred (first listed) version."""
        return self.versions[0]

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    def api_version(self, version: str | None = None) -> str:
        v = version or self.version
        return f"{self.group}/{v}" if self.group else v

    def schema(self, version: str | None = None) -> Schema:
        return self.schemas.get(version or self.version) or Schema.for_object(None)

    def printer_columns(self, version: str | None = None) -> list[Column]:
        extra = self.columns.get(version or self.version, [])
        return [Column("Name", "string", func=lambda o: o["metadata"]["name"], format="name",
                       description="Name must be unique within a namespace.")] + extra

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    def field_value(self, obj: dict, name: str) -> str | None:
        meta = obj.get("metadata") or {}
        if name == "metadata.name":
            return meta.get("name", "")
        if name == "metadata.namespace":
            return meta.get("namespace", "")
        fn = self.selectable_fields.get(name)
        if fn is None:
            raise ApiError(400, f'"{name}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                           + "".join(f', "{f}"' for f in sorted(self.selectable_fields)))
        value = fn(obj)
        return "" if value is None else str(value)


# --- helpers: ages and a small JSONPath -----------------------------------------------------


def parse_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def human_age(timestamp: str | None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d``: the compact age kubectl shows."""
    when = parse_time(timestamp or "")
    if when is None:
        return "<unknown>"
    seconds = max(0, int((dt.datetime.now(dt.UTC) - when).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 2:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


_JSONPATH_TOKEN = re.compile(r"\.([A-Za-z0-9_\-/]+)|\[(\*|\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*([^)]*)\)\]")


def jsonpath(obj: Any, expression: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use (``.a.b``, ``[0]``, ``[*]``, ``[?(@.k=='v')]``)."""
    current = [obj]
    pos = 0
    expression = expression.strip()
    while pos < len(expression):
        m = _JSONPATH_TOKEN.match(expression, pos)
        if not m:
            return []
        pos = m.end()
        nxt: list[Any] = []
        if m.group(1) is not None:
            for node in current:
                if isinstance(node, dict) and m.group(1) in node:
                    nxt.append(node[m.group(1)])
        elif m.group(2) is not None:
            for node in current:
                if isinstance(node, list):
                    if m.group(2) == "*":
                        nxt.extend(node)
                    elif int(m.group(2)) < len(node):
                        nxt.append(node[int(m.group(2))])
        else:
            wanted = m.group(4).strip().strip("'\"")
            for node in current:
                for item in node if isinstance(node, list) else []:
                    value: Any = item
                    for part in m.group(3).split("."):
                        value = value.get(part) if isinstance(value, dict) else None
                    shown = str(value).lower() if isinstance(value, bool) else str(value)
                    if value is not None and shown == wanted:
                        nxt.append(item)
        current = nxt
    return current


# --- built-in types ---------------------------------------------------------------------------


def _involved(name: str) -> Callable[[dict], Any]:
    return lambda o: (o.get("involvedObject") or {}).get(name)


def _age(o: dict) -> str:
    return human_age((o.get("metadata") or {}).get("creationTimestamp"))


def _pod_ready(o: dict) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status_and_restarts(o: dict) -> tuple[str, int]:
    """STATUS and RESTARTS as the API server's pod printer shows them: while an init container
    has not completed, ``Init:<reason>`` (``Init:CrashLoopBackOff``, ``Init:Error``) or
    ``Init:<done>/<all>`` and the init containers' restarts; then the containers' reasons."""
    status = o.get("status") or {}
    reason = status.get("reason") or status.get("phase") or ""
    init_specs = (o.get("spec") or {}).get("initContainers") or []
    restarts = 0
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(container.get("restartCount") or 0)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and int(terminated.get("exitCode") or 0) == 0:
            continue
        if terminated:
            reason = "Init:" + (terminated.get("reason") or f"ExitCode:{int(terminated.get('exitCode') or 0)}")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    if not initializing:
        restarts = 0
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            state = container.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return reason, restarts


def _pod_restarts(o: dict) -> int:
    return _pod_status_and_restarts(o)[1]


def _node_status(o: dict) -> str:
    ready = next((c for c in (o.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    return f"{state},SchedulingDisabled" if (o.get("spec") or {}).get("unschedulable") else state


def _node_roles(o: dict) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in (o.get("metadata") or {}).get("labels") or {} if k.startswith(prefix))
    return ",".join(roles) or "<none>"


_ACCESS_MODE_SHORT = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                      "ReadWriteOncePod": "RWOP"}


def _access_modes(o: dict) -> str:
    modes = (o.get("status") or {}).get("accessModes") or []
    return ",".join(_ACCESS_MODE_SHORT.get(m, m) for m in modes)


def _event_object(o: dict) -> str:
    inv = o.get("involvedObject") or {}
    return f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}"


def builtin_types() -> list[ResourceType]:
    """Fresh ResourceType objects for everything served without CRD files."""
    core = load_own_schema("core")
    return [
        ResourceType(
            "", ["v1"], "namespaces", "namespace", "Namespace", False, ["ns"],
            schemas={"v1": Schema.for_object(core["Namespace"])}, status_subresource=True,
            columns={"v1": [Column("Status", func=lambda o: (o.get("status") or {}).get("phase", "")),
                            Column("Age", func=_age)]},
            strategic_merge=True,
            selectable_fields={"status.phase": lambda o: (o.get("status") or {}).get("phase")},
        ),
        ResourceType(
            "", ["v1"], "secrets", "secret", "Secret", True, [],
            schemas={"v1": Schema.for_object(core["Secret"])},
            columns={"v1": [Column("Type", func=lambda o: o.get("type", "")),
                            Column("Data", "integer", func=lambda o: len(o.get("data") or {})),
                            Column("Age", func=_age)]},
            strategic_merge=True, selectable_fields={"type": lambda o: o.get("type")},
        ),
        ResourceType(
            "", ["v1"], "configmaps", "configmap", "ConfigMap", True, ["cm"],
            schemas={"v1": Schema.for_object(core["ConfigMap"])},
            columns={"v1": [Column("Data", "integer", func=lambda o: len(o.get("data") or {})
                                   + len(o.get("binaryData") or {})),
                            Column("Age", func=_age)]},
            strategic_merge=True,
        ),
        ResourceType(
            "", ["v1"], "nodes", "node", "Node", False, ["no"],
            schemas={"v1": Schema.for_object(core["Node"])}, status_subresource=True,
            columns={"v1": [Column("Status", func=_node_status), Column("Roles", func=_node_roles),
                            Column("Age", func=_age),
                            Column("Version", func=lambda o: ((o.get("status") or {}).get("nodeInfo") or {})
                                   .get("kubeletVersion", ""))]},
            strategic_merge=True,
            selectable_fields={"spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable")))
                               .lower()},
        ),
        ResourceType(
            "", ["v1"], "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", True, ["pvc"],
            schemas={"v1": Schema.for_object(core["PersistentVolumeClaim"])}, status_subresource=True,
            columns={"v1": [Column("Status", func=lambda o: (o.get("status") or {}).get("phase", "")),
                            Column("Volume", func=lambda o: (o.get("spec") or {}).get("volumeName", "")),
                            Column("Capacity", func=lambda o: ((o.get("status") or {}).get("capacity") or {})
                                   .get("storage", "")),
                            Column("Access Modes", func=_access_modes),
                            Column("StorageClass", func=lambda o: (o.get("spec") or {}).get("storageClassName")
                                   or "<unset>"),
                            Column("Age", func=_age)]},
            strategic_merge=True,
            selectable_fields={"status.phase": lambda o: (o.get("status") or {}).get("phase")},
        ),
        ResourceType(
            "", ["v1"], "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"],
            schemas={"v1": Schema.for_object(core["ServiceAccount"])},
            columns={"v1": [Column("Secrets", "integer", func=lambda o: len(o.get("secrets") or [])),
                            Column("Age", func=_age)]},
            strategic_merge=True,
        ),
        ResourceType(
            "", ["v1"], "events", "event", "Event", True, ["ev"],
            schemas={"v1": Schema.for_object(core["Event"])},
            columns={"v1": [Column("Type", func=lambda o: o.get("type", "")),
                            Column("Reason", func=lambda o: o.get("reason", "")),
                            Column("Object", func=_event_object),
                            Column("Message", func=lambda o: o.get("message", ""))]},
            strategic_merge=True,
            selectable_fields={
                "involvedObject.kind": _involved("kind"),
                "involvedObject.name": _involved("name"),
                "involvedObject.namespace": _involved("namespace"),
                "involvedObject.uid": _involved("uid"),
                "involvedObject.apiVersion": _involved("apiVersion"),
                "involvedObject.resourceVersion": _involved("resourceVersion"),
                "involvedObject.fieldPath": _involved("fieldPath"),
                "reason": lambda o: o.get("reason"),
                "reportingComponent": lambda o: o.get("reportingComponent"),
                "source": lambda o: (o.get("source") or {}).get("component"),
                "type": lambda o: o.get("type"),
            },
        ),
        ResourceType(
            "", ["v1"], "pods", "pod", "Pod", True, ["po"], categories=["all"],
            schemas={"v1": Schema.for_object(core["Pod"])}, status_subresource=True,
            columns={"v1": [Column("Ready", func=_pod_ready),
                            Column("Status", func=lambda o: _pod_status_and_restarts(o)[0]),
                            Column("Restarts", "integer", func=_pod_restarts),
                            Column("Age", func=_age),
                            Column("IP", func=lambda o: (o.get("status") or {}).get("podIP") or "<none>", priority=1),
                            Column("Node", func=lambda o: (o.get("spec") or {}).get("nodeName") or "<none>",
                                   priority=1)]},
            strategic_merge=True,
            selectable_fields={
                "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName"),
                "spec.serviceAccountName": lambda o: (o.get("spec") or {}).get("serviceAccountName"),
                "status.phase": lambda o: (o.get("status") or {}).get("phase"),
            },
        ),
        # InferenceService, ServingRuntime, ClusterServingRuntime: KServe 0.20's CRDs as
        # generated by crdgen (Kubernetes types derived from the kubernetes client).
        *(types_from_crd(crd) for crd in builtin_crds()),
    ]


CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"


def crd_type() -> ResourceType:
    """``apiextensions.k8s.io/v1`` CustomResourceDefinitions, served read-only: the ones the server
    was started with (built-in and ``--crd``), so clients can read a cluster's KServe schema."""
    return ResourceType(
        "apiextensions.k8s.io", ["v1"], "customresourcedefinitions", "customresourcedefinition",
        "CustomResourceDefinition", False, ["crd", "crds"], categories=["api-extensions"],
        schemas={"v1": Schema.for_object({"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                          "properties": {"apiVersion": {"type": "string"},
                                                         "kind": {"type": "string"},
                                                         "metadata": {"type": "object"}}})},
        status_subresource=True,
        columns={"v1": [Column("Created At", "date", ".metadata.creationTimestamp")]},
    )


def types_from_crd(crd: dict[str, Any]) -> ResourceType:
    """Build a ResourceType from a ``apiextensions.k8s.io/v1`` CustomResourceDefinition."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"not a CustomResourceDefinition: {crd.get('kind')!r}")
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    # Storage version first: it is what discovery prefers and what objects are stored as.
    served.sort(key=lambda v: not v.get("storage", False))
    schemas, columns = {}, {}
    status = False
    for version in served:
        root = (version.get("schema") or {}).get("openAPIV3Schema")
        schemas[version["name"]] = Schema.for_object(root)
        columns[version["name"]] = [
            Column(c["name"], c.get("type", "string"), c["jsonPath"], description=c.get("description", ""),
                   priority=c.get("priority", 0), format=c.get("format", ""))
            for c in version.get("additionalPrinterColumns") or []
        ] or [Column("Age", "date", ".metadata.creationTimestamp")]
        status = status or "status" in (version.get("subresources") or {})
    return ResourceType(
        group=spec["group"],
        versions=[v["name"] for v in served],
        plural=names["plural"],
        singular=names.get("singular", names["kind"].lower()),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        schemas=schemas,
        status_subresource=status,
        columns=columns,
        from_crd=True,
    )


class Registry:
    """All served resource types, looked up by URL parts or by any of their names."""

    def __init__(self, types: list[ResourceType]):
        self._types: dict[str, ResourceType] = {}
        for t in types:
            self.add(t)

    def add(self, rtype: ResourceType) -> None:
        self._types[rtype.key] = rtype

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """group -> versions (preferred first), core group as ``""``."""
        out: dict[str, list[str]] = {}
        for t in self._types.values():
            for v in t.versions:
                versions = out.setdefault(t.group, [])
                if v not in versions:
                    versions.append(v)
        return out

    def by_url(self, group: str, version: str, plural: str) -> ResourceType | None:
        t = self._types.get(f"{group}/{plural}")
        if t is None or version not in t.versions:
            return None
        return t

    def for_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and version in t.versions]

    def lookup(self, name: str) -> ResourceType:
        """Find a type by plural, singular, kind, short name or ``plural.group`` (case-insensitive)."""
        wanted = name.lower()
        for t in self._types.values():
            names = {t.plural, t.singular, t.kind.lower(), f"{t.plural}.{t.group}", *t.short_names}
            if wanted in names:
                return t
        raise KeyError(f"unknown resource {name!r}")

    def for_object(self, obj: dict) -> ResourceType:
        api_version = obj.get("apiVersion", "")
        group, _, version = api_version.rpartition("/")
        for t in self._types.values():
            if t.group == group and t.kind == obj.get("kind") and version in t.versions:
                return t
        raise KeyError(f"no resource for {api_version} {obj.get('kind')}")
