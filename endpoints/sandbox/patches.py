"""The three non-apply patch formats the API server accepts.

* JSON merge patch (RFC 7386, ``application/merge-patch+json``),
* JSON patch (RFC 6902, ``application/json-patch+json``),
* strategic merge patch (``application/strategic-merge-patch+json``), only for core kinds, as on
  the real server: lists with a merge key (taken from the schema's list-map keys, or a small table
  of well-known keys such as ``containers``/``name``) merge by key, ``finalizers`` merge as a set, and
  the directives ``$patch: replace|delete``, ``$retainKeys``, ``$deleteFromPrimitiveList/<f>`` and
  ``$setElementOrder/<f>`` are honoured (the latter only by being accepted and dropped).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, Cause
from .schema import Schema

# patchMergeKey of list fields in core types that kubectl sends strategic patches for.
_WELL_KNOWN_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "secrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
}
_SET_LISTS = {"finalizers"}


def _patch_error(message: str) -> ApiError:
    # The real server reports an unappliable patch as 422 Invalid on field "patch".
    return ApiError(422, f"the server rejected our request due to an error in our request: {message}",
                    reason="Invalid", causes=[Cause("FieldValueInvalid", message, "patch")])


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 --------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _patch_error(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve_parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _patch_error(f"doc is missing path: {path}")
    return node, parts[-1]


def _list_index(container: list, segment: str, path: str, *, allow_end: bool) -> int:
    if segment == "-" and allow_end:
        return len(container)
    if not segment.isdigit():
        raise _patch_error(f"invalid array index {segment!r} in {path}")
    index = int(segment)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise _patch_error(f"array index out of bounds: {path}")
    return index


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent, last = _resolve_parent(doc, parts, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise _patch_error(f"doc is missing key: {path}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_list_index(parent, last, path, allow_end=False)]
    raise _patch_error(f"doc is missing path: {path}")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _resolve_parent(doc, parts, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, path, allow_end=True), value)
    else:
        raise _patch_error(f"doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise _patch_error("cannot remove the whole document")
    parent, last = _resolve_parent(doc, parts, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise _patch_error(f"unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_list_index(parent, last, path, allow_end=False)]
    else:
        raise _patch_error(f"doc is missing path: {path}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 operation list to a copy of ``target``."""
    if not isinstance(operations, list):
        raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _patch_error(f"invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _remove(doc, path) if _pointer(path) else doc
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            value = _get(doc, op["from"])
            doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise _patch_error(f"testing value {path} failed: test failed")
        else:
            raise _patch_error(f"Unexpected kind: {kind}")
    return doc


# --- strategic merge patch -------------------------------------------------------------------


def _merge_key(field: str, schema: Schema) -> str | None:
    keys = schema.list_keys
    if schema.list_type == "map" and len(keys) == 1:
        return keys[0]
    return _WELL_KNOWN_MERGE_KEYS.get(field)


def strategic_merge_patch(target: Any, patch: Any, schema: Schema) -> Any:
    """Apply a strategic merge patch (see module docstring for the supported subset)."""
    return _smp_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch, schema)


def _smp_map(result: dict, patch: dict, schema: Schema) -> dict:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        child = schema.child(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                base = result.get(key) if isinstance(result.get(key), dict) else {}
                result[key] = _smp_map(base, value, child)
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value, child)
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        for key in list(result):
            if key not in retain:
                del result[key]
    return result


def _smp_list(field: str, current: Any, patch: list, schema: Schema) -> list:
    current = current if isinstance(current, list) else []
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    if field in _SET_LISTS or schema.list_type == "set":
        merged = list(current)
        for v in patch:
            if v not in merged:
                merged.append(copy.deepcopy(v))
        return merged
    key = _merge_key(field, schema)
    if key is None:
        return copy.deepcopy(patch)
    merged = list(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            merged.append(copy.deepcopy(item))
            continue
        index = next((i for i, cur in enumerate(merged) if isinstance(cur, dict) and cur.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            merged[index] = _smp_map(merged[index], item, schema.items())
    return merged
