"""The built-in KServe CustomResourceDefinitions, generated at load time.

Without ``--crd`` files the sandbox serves InferenceService, ServingRuntime and
ClusterServingRuntime from CRDs built here, in two halves:

* **Kubernetes types** (PodSpec, Container, Volume, Probe, Affinity, … the whole closure) are
  derived from the model classes of the official ``kubernetes`` Python client: field names and
  types from ``openapi_types``/``attribute_map``, descriptions and ``required`` from the models
  themselves (pydantic ``model_fields`` in newer clients such as 37; the property docstrings
  and the setters' "must not be `None`" checks in the older generator; a ``$ref`` field without
  a description gets the referenced class's summary). What the client does not carry — list and
  map semantics, which strings are Quantities, server-side defaults — comes from the small named
  tables below (Kubernetes' own API markers).
* **KServe's own types** (the InferenceService spec and status, the ServingRuntime spec, the
  kinds' names and printer columns) are described as data in
  ``profiles/builtin/kserve-types.yaml``, whose entries build on the derived Kubernetes types.

The result imitates KServe 0.20's CRDs; ``docs/fake-apiserver.md`` lists where it differs.
The dicts returned are shared (cached per process): callers must not mutate them.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from .schema import load_yaml_documents

KSERVE_TYPES_FILE = Path(__file__).resolve().parent / "profiles" / "builtin" / "kserve-types.yaml"

# --- facts the kubernetes client does not carry ------------------------------------------------

# Fields of the client's newer Kubernetes API (the installed client follows Kubernetes 1.37) that
# the k8s.io/api KServe 0.20 is built against does not have. Left out so that the schema accepts
# what KServe's CRD accepts, no more.
NEWER_THAN_KSERVE: dict[str, frozenset[str]] = {
    "V1PodSpec": frozenset({"schedulingGroup", "evictionResponders"}),
    "V1HTTPGetAction": frozenset({"protocol"}),
    "V1GRPCAction": frozenset({"mode"}),
    "V1VolumeMount": frozenset({"bindMountOptions"}),
    "V1EmptyDirVolumeSource": frozenset({"mode"}),
    "V1ConfigMapVolumeSource": frozenset({"defaultUser"}),
    "V1SecretVolumeSource": frozenset({"defaultUser"}),
    "V1DownwardAPIVolumeSource": frozenset({"defaultUser"}),
    "V1ProjectedVolumeSource": frozenset({"defaultUser"}),
    "V1KeyToPath": frozenset({"user"}),
    "V1DownwardAPIVolumeFile": frozenset({"user"}),
    "V1ClusterTrustBundleProjection": frozenset({"user"}),
    "V1ServiceAccountTokenProjection": frozenset({"user"}),
    "V1PodCertificateProjection": frozenset({"user", "userAnnotations"}),
}

# Kubernetes resource.Quantity values: the client types them as plain strings, the API server
# accepts a number or a string matching QUANTITY_PATTERN.
QUANTITY_FIELDS: frozenset[tuple[str, str]] = frozenset({
    ("V1ResourceRequirements", "limits"),
    ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"),
    ("V1VolumeResourceRequirements", "requests"),
    ("V1PodSpec", "overhead"),
    ("V1EmptyDirVolumeSource", "sizeLimit"),
    ("V1ResourceFieldSelector", "divisor"),
    ("V2HPAScalingRules", "tolerance"),
})
QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")

# ``+listType=map`` lists and their ``+listMapKey`` keys.
LIST_MAP_KEYS: dict[tuple[str, str], list[str]] = {
    **{(container, field): keys
       for container in ("V1Container", "V1EphemeralContainer")
       for field, keys in (("env", ["name"]), ("ports", ["containerPort", "protocol"]),
                           ("volumeDevices", ["devicePath"]), ("volumeMounts", ["mountPath"]))},
    ("V1ResourceRequirements", "claims"): ["name"],
    ("V1PodSpec", "resourceClaims"): ["name"],
    ("V1PodSpec", "schedulingGates"): ["name"],
    ("V1PodSpec", "topologySpreadConstraints"): ["topologyKey", "whenUnsatisfiable"],
}
# ``+listType=set`` lists. Every other Kubernetes list is ``+listType=atomic``, except those of
# PodSpec itself: KServe's PodSpec is its own Go copy of the struct and carries no list markers
# (only the three map lists above).
LIST_SETS: frozenset[tuple[str, str]] = frozenset({("V1ContainerRestartRuleOnExitCodes", "values")})
UNMARKED_LIST_CLASSES: frozenset[str] = frozenset({"V1PodSpec"})

# ``+structType=atomic`` structs (server-side apply owns and replaces them whole), and the one
# ``+mapType=atomic`` string map.
ATOMIC_STRUCTS: frozenset[str] = frozenset({
    "V1ConfigMapEnvSource", "V1ConfigMapKeySelector", "V1ConfigMapProjection", "V1ConfigMapVolumeSource",
    "V1FileKeySelector", "V1LabelSelector", "V1LocalObjectReference", "V1NodeSelector", "V1NodeSelectorTerm",
    "V1ObjectFieldSelector", "V1ResourceFieldSelector", "V1SecretEnvSource", "V1SecretKeySelector",
    "V1SecretProjection", "V1TypedLocalObjectReference",
})
ATOMIC_MAPS: frozenset[tuple[str, str]] = frozenset({("V1PodSpec", "nodeSelector")})

# Server-side defaults (``+default=`` markers) of the Kubernetes types.
DEFAULTS: dict[tuple[str, str], Any] = {
    ("V1ContainerPort", "protocol"): "TCP",
    ("V1GRPCAction", "service"): "",
    ("V1FileKeySelector", "optional"): False,
    ("V1AzureDiskVolumeSource", "fsType"): "ext4",
    ("V1AzureDiskVolumeSource", "readOnly"): False,
    ("V1ISCSIVolumeSource", "iscsiInterface"): "default",
    ("V1RBDVolumeSource", "keyring"): "/etc/ceph/keyring",
    ("V1RBDVolumeSource", "pool"): "rbd",
    ("V1RBDVolumeSource", "user"): "admin",
    ("V1ScaleIOVolumeSource", "fsType"): "xfs",
    ("V1ScaleIOVolumeSource", "storageMode"): "ThinProvisioned",
    **{(cls, "name"): "" for cls in ("V1ConfigMapEnvSource", "V1ConfigMapKeySelector", "V1ConfigMapProjection",
                                     "V1ConfigMapVolumeSource", "V1LocalObjectReference", "V1SecretEnvSource",
                                     "V1SecretKeySelector", "V1SecretProjection")},
}

# A CRD cannot describe an embedded ObjectMeta (the API server only accepts ``type: object``).
OPAQUE_OBJECTS: frozenset[str] = frozenset({"V1ObjectMeta"})

_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "object": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
}
_CONTAINER = re.compile(r"^(list|List|dict|Dict)[\[(](?:str, )?(.+)[\])]$")


# --- reading the kubernetes client's models ---------------------------------------------------


def _model(name: str) -> type:
    """The client's model class ``name`` (``V1PodSpec``); the package loads its models lazily."""
    import kubernetes.client  # ~0.5 s, paid once per process and only when the CRDs are built

    return getattr(kubernetes.client, name)


def _first_paragraph(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n")[0].split()) if text else ""


def _class_description(cls: type) -> str:
    text = _first_paragraph(cls.__doc__)
    return "" if text.startswith("NOTE: This class is auto generated") else text


def _property_description(cls: type, attr: str) -> str:
    """Older generator: the property docstring between "Gets the …" and ":return:"."""
    prop = getattr(cls, attr, None)
    doc = inspect.cleandoc(getattr(prop, "__doc__", None) or "")
    lines = doc.replace("  # noqa: E501", "").splitlines()
    body = []
    for line in lines[1:]:
        if line.strip().startswith(":return:"):
            break
        body.append(line.strip())
    return " ".join(" ".join(body).split())


@functools.cache
def _required_from_setters(cls: type) -> frozenset[str]:
    """Older generator: attributes whose setter raises "Invalid value for `x`, must not be `None`"."""
    try:
        source = inspect.getsource(sys.modules[cls.__module__])
    except (OSError, TypeError, KeyError):
        return frozenset()
    return frozenset(re.findall(r"Invalid value for `(\w+)`, must not be `None`", source))


def _field_facts(cls: type, attr: str) -> tuple[str, bool]:
    """(description, required) of one attribute of a client model."""
    fields = getattr(cls, "model_fields", None)
    if fields is not None and attr in fields:  # pydantic models (the newer generator, e.g. client 37)
        info = fields[attr]
        return " ".join((info.description or "").split()), info.is_required()
    return _property_description(cls, attr), attr in _required_from_setters(cls)


# --- Kubernetes types -------------------------------------------------------------------------


@functools.cache
def k8s_struct(name: str) -> dict[str, Any]:
    """The structural schema of the client model ``name`` (shared: do not mutate)."""
    if name in OPAQUE_OBJECTS:
        return {"type": "object"}
    cls = _model(name)
    dropped = NEWER_THAN_KSERVE.get(name, frozenset())
    props: dict[str, Any] = {}
    required: list[str] = []
    node: dict[str, Any] = {"type": "object", "properties": props}
    for attr, type_name in cls.openapi_types.items():
        json_name = cls.attribute_map[attr]
        if json_name in dropped:
            continue
        description, is_required = _field_facts(cls, attr)
        props[json_name] = _k8s_field(name, json_name, type_name, description)
        if is_required:
            required.append(json_name)
    if required:
        node["required"] = sorted(required)
    if name in ATOMIC_STRUCTS:
        node["x-kubernetes-map-type"] = "atomic"
    return node


def _k8s_value(type_name: str, quantity: bool) -> dict[str, Any]:
    if quantity:
        return {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": QUANTITY_PATTERN}
    if type_name in _SCALARS:
        return dict(_SCALARS[type_name])
    return k8s_struct(type_name)


def _k8s_field(owner: str, field: str, type_name: str, description: str) -> dict[str, Any]:
    key = (owner, field)
    quantity = key in QUANTITY_FIELDS
    m = _CONTAINER.match(type_name)
    if m and m.group(1).lower() == "list":
        node: dict[str, Any] = {"type": "array", "items": _k8s_value(m.group(2), quantity)}
        if key in LIST_MAP_KEYS:
            node["x-kubernetes-list-type"] = "map"
            node["x-kubernetes-list-map-keys"] = list(LIST_MAP_KEYS[key])
        elif key in LIST_SETS:
            node["x-kubernetes-list-type"] = "set"
        elif owner not in UNMARKED_LIST_CLASSES:
            node["x-kubernetes-list-type"] = "atomic"
    elif m:
        node = {"type": "object", "additionalProperties": _k8s_value(m.group(2), quantity)}
        if key in ATOMIC_MAPS:
            node["x-kubernetes-map-type"] = "atomic"
    else:
        value = _k8s_value(type_name, quantity)
        node = dict(value)  # a shallow copy: the field's own description goes on top
        if not description and type_name not in _SCALARS:
            description = _class_description(_model(type_name)) if type_name not in OPAQUE_OBJECTS else ""
    if key in DEFAULTS:
        node["default"] = DEFAULTS[key]
    if description:
        node = {"description": description, **node}
    return node


# --- KServe's own types (profiles/builtin/kserve-types.yaml) ---------------------------------

_OWN_SCALARS = {"string", "integer", "boolean", "number"}
_PASSTHROUGH = {"enum", "minimum", "maximum", "pattern", "default", "minItems", "maxItems", "minLength",
                "maxLength", "format", "nullable"}


class KServeTypes:
    """Builds schemas from the type table of ``kserve-types.yaml``."""

    def __init__(self, table: dict[str, Any]):
        self.table = table
        self._built: dict[str, dict[str, Any]] = {}

    def struct(self, name: str) -> dict[str, Any]:
        if name.startswith("k8s:"):
            return k8s_struct(name[4:])
        if name in self._built:
            return self._built[name]
        entry = self.table[name]
        props: dict[str, Any] = {}
        required: set[str] = set()
        for base in entry.get("include") or []:
            # "TypeName" takes every field of that type, {type: TypeName, only: [...]} a few.
            only = None
            if isinstance(base, dict):
                base, only = base["type"], set(base["only"])
            inherited = self.struct(base)
            props.update({k: v for k, v in (inherited.get("properties") or {}).items() if only is None or k in only})
            required.update(r for r in inherited.get("required") or [] if only is None or r in only)
        for dropped in entry.get("drop") or []:
            props.pop(dropped, None)
            required.discard(dropped)
        required.difference_update(entry.get("optional") or [])
        for path in entry.get("relax") or []:
            head, _, rest = path.partition(".")
            props[head.removesuffix("[]")] = _relaxed(props[head.removesuffix("[]")], head.endswith("[]"), rest)
        for field, spec in (entry.get("fields") or {}).items():
            props[field] = self.field(spec)
        required.update(entry.get("required") or [])
        node: dict[str, Any] = {"type": "object"}
        if props:
            node["properties"] = dict(sorted(props.items()))
        if required:
            node["required"] = sorted(required & set(props))
        if entry.get("preserveUnknownFields"):
            node["x-kubernetes-preserve-unknown-fields"] = True
        self._built[name] = node
        return node

    def value(self, type_name: str) -> dict[str, Any]:
        if type_name in _OWN_SCALARS:
            return {"type": type_name}
        if type_name == "int-or-string":
            return dict(_SCALARS["object"])
        if type_name == "quantity":
            return _k8s_value("str", True)
        return self.struct(type_name)

    def field(self, spec: Any) -> dict[str, Any]:
        if isinstance(spec, str):
            spec = {"type": spec}
        if "list" in spec:
            node: dict[str, Any] = {"type": "array", "items": self.value(spec["list"])}
        elif "map" in spec:
            node = {"type": "object", "additionalProperties": self.value(spec["map"])}
        elif "ref" in spec:
            node = dict(self.struct(spec["ref"]))
        else:
            node = dict(self.value(spec["type"]))
        node.update({k: v for k, v in spec.items() if k in _PASSTHROUGH})
        if "listType" in spec:
            node["x-kubernetes-list-type"] = spec["listType"]
        if "listMapKeys" in spec:
            node["x-kubernetes-list-map-keys"] = list(spec["listMapKeys"])
        if "mapType" in spec:
            node["x-kubernetes-map-type"] = spec["mapType"]
        if spec.get("preserveUnknownFields"):
            node["x-kubernetes-preserve-unknown-fields"] = True
        if spec.get("doc"):
            node = {"description": " ".join(spec["doc"].split()), **node}
        return node


def _relaxed(node: dict[str, Any], items: bool, path: str) -> dict[str, Any]:
    """A copy of ``node`` in which the field at ``path`` (``a.b[].c``) is no longer required."""
    node = dict(node)
    if items:
        node["items"] = _relaxed(node["items"], False, path)
        return node
    head, _, rest = path.partition(".")
    name = head.removesuffix("[]")
    if not rest and not head.endswith("[]"):
        node["required"] = [r for r in node.get("required") or [] if r != name]
        if not node["required"]:
            del node["required"]
        return node
    node["properties"] = dict(node["properties"])
    node["properties"][name] = _relaxed(node["properties"][name], head.endswith("[]"), rest)
    return node


def _crd(kind: str, entry: dict[str, Any], types: KServeTypes) -> dict[str, Any]:
    props: dict[str, Any] = {
        "apiVersion": {"type": "string", "description": "The versioned schema of this object (group/version)."},
        "kind": {"type": "string", "description": "The REST resource this object represents."},
        "metadata": {"type": "object"},
        "spec": types.field({"ref": entry["spec"], "doc": entry.get("specDoc", "")}),
        "status": types.field({"ref": entry["status"], "doc": entry.get("statusDoc", "")}),
    }
    version: dict[str, Any] = {
        "name": entry["version"],
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"description": entry.get("doc", ""), "type": "object", "properties": props}},
        "subresources": {"status": {}} if entry.get("statusSubresource") else {},
    }
    if entry.get("columns"):
        version["additionalPrinterColumns"] = [dict(c) for c in entry["columns"]]
    names = {"kind": kind, "listKind": f"{kind}List", "plural": entry["plural"], "singular": kind.lower()}
    if entry.get("shortNames"):
        names["shortNames"] = list(entry["shortNames"])
    if entry.get("categories"):
        names["categories"] = list(entry["categories"])
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{entry['plural']}.{entry['group']}"},
        "spec": {"group": entry["group"], "names": names, "scope": entry.get("scope", "Namespaced"),
                 "versions": [version]},
    }


@functools.lru_cache(maxsize=4)
def builtin_crds(path: str = str(KSERVE_TYPES_FILE)) -> tuple[dict[str, Any], ...]:
    """The KServe CRDs (InferenceService, ServingRuntime, ClusterServingRuntime), shared per process."""
    data = load_yaml_documents(path)[0]
    types = KServeTypes(data["types"])
    return tuple(_crd(kind, entry, types) for kind, entry in data["kinds"].items())
