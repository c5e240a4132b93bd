"""Structural OpenAPI v3 schemas, the way the API server uses them for custom resources.

The fake API server needs a schema for four jobs, all implemented here without external
validators so that error paths and messages match the real server's:

* **pruning** unknown fields (reported for ``fieldValidation=Strict|Warn``, dropped otherwise),
* **defaulting** (``default:`` values are filled in, as the real server does on every write),
* **validation** (types, enums, required, patterns, min/max, lengths, item counts, list-map
  key uniqueness), producing one ``Cause`` per field with paths like ``spec.predictor.minReplicas``,
* **navigation** for server-side apply (``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys``,
  ``x-kubernetes-map-type``), see ``ssa.py``.

Supported vendor extensions: ``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-int-or-string``,
``x-kubernetes-list-type``/``-list-map-keys``, ``x-kubernetes-map-type``, ``nullable``.
Not supported: CEL rules (``x-kubernetes-validations``) and ``format`` checks.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import Cause

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The server owns ObjectMeta; CRD schemas only say ``metadata: {type: object}``. This is the
# subset of ObjectMeta's structure that pruning, validation and SSA need.
OBJECT_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "selfLink": {"type": "string"},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": "string", "nullable": True},
        "deletionTimestamp": {"type": "string", "nullable": True},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "ownerReferences": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["uid"],
            "items": {
                "type": "object",
                "required": ["apiVersion", "kind", "name", "uid"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "uid": {"type": "string"},
                    "controller": {"type": "boolean"},
                    "blockOwnerDeletion": {"type": "boolean"},
                },
            },
        },
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    },
}

_ROOT_FIELDS = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}


class Schema:
    """A node of a structural schema; ``Schema(None)`` stands for "anything goes" (no schema)."""

    __slots__ = ("node",)

    def __init__(self, node: dict[str, Any] | None):
        self.node = node

    @classmethod
    def for_object(cls, root: dict[str, Any] | None) -> Schema:
        """Wrap an ``openAPIV3Schema`` root, substituting the server's ObjectMeta for ``metadata``."""
        if root is None:
            root = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        root = dict(root)
        props = dict(root.get("properties") or {})
        props.update({k: v for k, v in _ROOT_FIELDS.items() if k not in props})
        props["metadata"] = OBJECT_META_SCHEMA
        root["properties"] = props
        return cls(root)

    # --- shape -------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self.node is None or bool(self.node.get("x-kubernetes-preserve-unknown-fields"))

    @property
    def is_struct(self) -> bool:
        """Has declared properties (an SSA "struct"): the node itself is never owned, only its fields."""
        return bool(self.node and self.node.get("properties"))

    def knows(self, key: str) -> bool:
        if self.node is None:
            return True
        props = self.node.get("properties") or {}
        if key in props:
            return True
        if self.node.get("additionalProperties") not in (None, False):
            return True
        return bool(self.node.get("x-kubernetes-preserve-unknown-fields"))

    def child(self, key: str) -> Schema:
        if self.node is None:
            return Schema(None)
        props = self.node.get("properties") or {}
        if key in props:
            return Schema(props[key])
        extra = self.node.get("additionalProperties")
        if isinstance(extra, dict):
            return Schema(extra)
        return Schema(None)

    def items(self) -> Schema:
        if self.node is None or not isinstance(self.node.get("items"), dict):
            return Schema(None)
        return Schema(self.node["items"])

    @property
    def list_type(self) -> str:
        if self.node is None:
            return "atomic"
        return self.node.get("x-kubernetes-list-type", "atomic")

    @property
    def list_keys(self) -> list[str]:
        if self.node is None:
            return []
        return list(self.node.get("x-kubernetes-list-map-keys") or [])

    @property
    def map_atomic(self) -> bool:
        return bool(self.node and self.node.get("x-kubernetes-map-type") == "atomic")


# --- pruning ---------------------------------------------------------------------------------


def prune(obj: Any, schema: Schema, path: str = "") -> list[str]:
    """Remove fields the schema does not declare (in place); return their paths."""
    unknown: list[str] = []
    _prune(obj, schema, path, unknown)
    return unknown


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(value: Any, schema: Schema, path: str, unknown: list[str]) -> None:
    if schema.node is None:
        return
    if isinstance(value, dict):
        for key in list(value):
            if not schema.knows(key):
                unknown.append(_join(path, key))
                del value[key]
                continue
            child = schema.child(key)
            _prune(value[key], child, _join(path, key), unknown)
    elif isinstance(value, list):
        items = schema.items()
        for i, item in enumerate(value):
            _prune(item, items, f"{path}[{i}]", unknown)


def drop_nulls(value: Any, schema: Schema) -> None:
    """Drop ``null`` values of non-nullable fields, as the real server's decoder does for CRs."""
    if isinstance(value, dict):
        for key in list(value):
            child = schema.child(key)
            if value[key] is None and not (child.node and child.node.get("nullable")):
                del value[key]
            else:
                drop_nulls(value[key], child)
    elif isinstance(value, list):
        items = schema.items()
        for item in value:
            drop_nulls(item, items)


# --- defaulting ------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: Schema) -> None:
    """Fill in ``default:`` values of missing properties whose parent object exists (in place)."""
    node = schema.node
    if node is None:
        return
    if isinstance(value, dict):
        for key, sub in (node.get("properties") or {}).items():
            if key not in value and isinstance(sub, dict) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key in value:
            apply_defaults(value[key], schema.child(key))
    elif isinstance(value, list):
        items = schema.items()
        for item in value:
            apply_defaults(item, items)


# --- validation ------------------------------------------------------------------------------

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    return True


def go_repr(value: Any) -> str:
    """Render a value the way the API server prints it in ``Invalid value: ...``."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate(value: Any, schema: Schema, path: str = "") -> list[Cause]:
    """Validate ``value`` against the structural schema; one Cause per problem."""
    causes: list[Cause] = []
    _validate(value, schema, path, causes)
    return causes


def _validate(value: Any, schema: Schema, path: str, causes: list[Cause]) -> None:
    node = schema.node
    if node is None:
        return
    if value is None:
        if not node.get("nullable") and node.get("type"):
            causes.append(
                Cause("FieldValueTypeInvalid", f'Invalid value: "null": {path} in body must be of type '
                      f'{node["type"]}: "null"', path)
            )
        return
    if node.get("x-kubernetes-int-or-string"):
        if not (_type_ok(value, "integer") or isinstance(value, str)):
            causes.append(
                Cause("FieldValueTypeInvalid", f'Invalid value: "{_json_type(value)}": {path} in body must be of '
                      f'type integer,string: "{_json_type(value)}"', path)
            )
            return
    elif node.get("type") and not _type_ok(value, node["type"]):
        causes.append(
            Cause("FieldValueTypeInvalid", f'Invalid value: "{_json_type(value)}": {path} in body must be of type '
                  f'{node["type"]}: "{_json_type(value)}"', path)
        )
        return
    if "enum" in node and value not in node["enum"]:
        supported = ", ".join(go_repr(v) for v in node["enum"])
        causes.append(Cause("FieldValueNotSupported", f"Unsupported value: {go_repr(value)}: supported values: {supported}", path))
    if isinstance(value, str):
        if "pattern" in node and not _regex(node["pattern"]).search(value):
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_repr(value)}: {path} in body should match '{node['pattern']}'", path))
        if "maxLength" in node and len(value) > node["maxLength"]:
            causes.append(Cause("FieldValueTooLong", f"Too long: may not be more than {node['maxLength']} bytes", path))
        if "minLength" in node and len(value) < node["minLength"]:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_repr(value)}: {path} in body should be at least {node['minLength']} chars long", path))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in node:
            low = node["minimum"]
            if value < low or (node.get("exclusiveMinimum") is True and value == low):
                op = "greater than" if node.get("exclusiveMinimum") is True else "greater than or equal to"
                causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_repr(value)}: {path} in body should be {op} {low}", path))
        if "maximum" in node:
            high = node["maximum"]
            if value > high or (node.get("exclusiveMaximum") is True and value == high):
                op = "less than" if node.get("exclusiveMaximum") is True else "less than or equal to"
                causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_repr(value)}: {path} in body should be {op} {high}", path))
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [validate(value, Schema(b), path) for b in node["anyOf"] if isinstance(b, dict)]
        if branches and all(branches):
            causes.extend(branches[0])
    if isinstance(value, dict):
        for req in node.get("required") or []:
            if req not in value:
                causes.append(Cause("FieldValueRequired", "Required value", _join(path, req)))
        for key, sub in value.items():
            child = schema.child(key)
            _validate(sub, child, _join(path, key), causes)
        if "maxProperties" in node and len(value) > node["maxProperties"]:
            causes.append(Cause("FieldValueTooMany", f"Too many: {len(value)}: must have at most {node['maxProperties']} items", path))
    elif isinstance(value, list):
        if "minItems" in node and len(value) < node["minItems"]:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {len(value)}: {path} in body should have at least {node['minItems']} items", path))
        if "maxItems" in node and len(value) > node["maxItems"]:
            causes.append(Cause("FieldValueTooMany", f"Too many: {len(value)}: must have at most {node['maxItems']} items", path))
        items = schema.items()
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", causes)
        _validate_list_uniqueness(value, schema, path, causes)


def _validate_list_uniqueness(value: list, schema: Schema, path: str, causes: list[Cause]) -> None:
    kind = schema.list_type
    if kind == "set":
        seen: set[str] = set()
        for i, item in enumerate(value):
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                causes.append(Cause("FieldValueDuplicate", f"Duplicate value: {go_repr(item)}", f"{path}[{i}]"))
            seen.add(key)
    elif kind == "map":
        keys = schema.list_keys
        seen = set()
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            ident = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
            if ident in seen:
                shown = ", ".join(f'"{k}":{go_repr(item.get(k))}' for k in keys)
                causes.append(
                    Cause("FieldValueDuplicate", f"Duplicate value: map[string]interface {{}}{{{shown}}}", f"{path}[{i}]")
                )
            seen.add(ident)


# --- ObjectMeta validation -----------------------------------------------------------------

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def _check_qualified_key(key: str, path: str, causes: list[Cause]) -> None:
    prefix, _, name = key.rpartition("/")
    ok = bool(name) and len(name) <= 63 and _QUALIFIED_NAME.match(name)
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        ok = False
    if not ok:
        causes.append(
            Cause("FieldValueInvalid", f"Invalid value: {go_repr(key)}: name part must consist of alphanumeric "
                  "characters, '-', '_' or '.', and must start and end with an alphanumeric character", path)
        )


def validate_object_meta(meta: dict[str, Any], *, namespaced: bool, name_is_label: bool = False) -> list[Cause]:
    """The checks the server applies to every object's metadata (name, labels, annotations)."""
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        causes.append(Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name"))
    else:
        pattern, msg, limit = (
            (DNS1123_LABEL, _LABEL_MSG, 63) if name_is_label else (DNS1123_SUBDOMAIN, _SUBDOMAIN_MSG, 253)
        )
        if len(name) > limit:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_repr(name)}: must be no more than {limit} characters", "metadata.name"))
        elif not pattern.match(name):
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_repr(name)}: {msg}", "metadata.name"))
    for key, value in (meta.get("labels") or {}).items():
        _check_qualified_key(key, "metadata.labels", causes)
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                Cause("FieldValueInvalid", f"Invalid value: {go_repr(value)}: a valid label must be an empty string or "
                      "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character", "metadata.labels")
            )
    annotations = meta.get("annotations") or {}
    for key in annotations:
        _check_qualified_key(key, "metadata.annotations", causes)
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 256 * 1024:
        causes.append(Cause("FieldValueTooLong", "Too long: must have at most 262144 bytes", "metadata.annotations"))
    return causes


# --- loading ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)  # every file of every release profile a test run may load
def _load_yaml_documents_cached(path: str, mtime: float) -> tuple[Any, ...]:
    with open(path, encoding="utf-8") as fh:
        return tuple(d for d in yaml.load_all(fh, Loader=_YAML_LOADER) if d)


def load_yaml_documents(path: str | Path) -> list[Any]:
    """Parse a (multi-document) YAML file, cached by path and mtime.

    The full KServe InferenceService CRD is ~2 MB; tests start a fresh server per test, so
    parsing it once per process keeps the suite fast. Callers must not mutate the result.
    """
    p = Path(path).resolve()
    return list(_load_yaml_documents_cached(str(p), p.stat().st_mtime))


def load_own_schema(name: str) -> dict[str, Any]:
    """A hand-written schema shipped in ``endpoints/sandbox/schemas/<name>.yaml``."""
    docs = load_yaml_documents(SCHEMA_DIR / f"{name}.yaml")
    return docs[0]


# --- decoding request bodies: duplicate keys ---------------------------------------------------
#
# Go's decoders keep the last value of a repeated key; in strict mode the real server reports each
# repetition: JSON (sigs.k8s.io/json) as ``duplicate field "spec.ports[0].hostPort"`` (the full path),
# YAML (go-yaml) as ``line 6: key "name" already set in map``.


class _KeyedDict(dict):
    """A JSON object while decoding, remembering which keys it saw more than once."""

    __slots__ = ("repeated",)

    def __init__(self) -> None:
        super().__init__()
        self.repeated: list[str] = []


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _KeyedDict:
    out = _KeyedDict()
    for key, value in pairs:
        if key in out:
            out.repeated.append(key)
        out[key] = value  # the last one wins, as in Go
    return out


def _plain(value: Any, path: str, found: list[str]) -> Any:
    if isinstance(value, dict):
        repeated = getattr(value, "repeated", ())
        out = {}
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            found.extend([child] * repeated.count(key))
            out[key] = _plain(item, child, found)
        return out
    if isinstance(value, list):
        return [_plain(item, f"{path}[{i}]", found) for i, item in enumerate(value)]
    return value


def loads_json_with_duplicates(body: bytes | str) -> tuple[Any, list[str]]:
    """``json.loads`` plus the paths of repeated keys, in document order (``metadata.name``,
    ``spec.ports[0].hostPort``, ``[1].path`` for a top-level array). Raises ValueError like json.loads."""
    found: list[str] = []
    value = _plain(json.loads(body, object_pairs_hook=_pairs_hook), "", found)
    return value, found


class _DuplicateKeyLoader(_YAML_LOADER):  # type: ignore[misc,valid-type]
    """A safe loader that records ``(line, key)`` of every repeated mapping key."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.repeated: list[tuple[int, str]] = []

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    self.repeated.append((key_node.start_mark.line + 1, str(key)))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_duplicate_keys(body: bytes | str) -> list[str]:
    """go-yaml's messages for repeated keys in a YAML (or JSON) document, by line:
    ``line 6: key "name" already set in map``. An unparsable body yields no messages."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    # A tab is only whitespace in valid JSON; PyYAML refuses some tabs that go-yaml reads.
    loader = _DuplicateKeyLoader(text.replace("\t", " "))
    try:
        loader.get_single_data()
    except yaml.YAMLError:
        return []
    finally:
        loader.dispose()
    return [f"line {line}: key {json.dumps(key)} already set in map" for line, key in sorted(loader.repeated)]
