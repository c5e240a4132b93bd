"""Server-side apply and field ownership (``metadata.managedFields``).

This is a from-scratch, simplified take on what the real API server does with
structured-merge-diff. What it implements:

* Field sets in the real ``FieldsV1`` wire format: ``f:<field>`` for struct/map fields,
  ``k:{"name":"X"}`` for items of ``x-kubernetes-list-type: map`` lists, ``v:<json>`` for items of
  ``set`` lists, and ``.`` marking a node that is itself owned and has owned children.
* **Apply** (``operation: Apply``): the manager owns exactly the fields in its applied
  configuration. Fields it set before and drops now are removed from the object unless another
  manager also owns them. A field owned by another manager whose applied value differs is a
  conflict (409 with one cause per field, naming the owner) unless ``force=true``, in which case
  ownership moves to the applier. Applying an unchanged configuration is a no-op (no write).
* **Update** (create/PUT/merge/JSON/strategic patch, ``operation: Update``): the manager gains
  every field the write added or changed and takes those fields away from other managers (no
  conflicts, as on the real server); fields the write removed leave every manager's set.
* Lists are atomic (owned and replaced whole) unless the schema says ``x-kubernetes-list-type:
  map`` (merged by its keys) or ``set`` (merged by value). Maps are granular unless
  ``x-kubernetes-map-type: atomic``.

Simplifications compared to structured-merge-diff: no per-version conversion of field sets, a
changed type of a field is treated like a changed value, conflicts are computed on leaf values
only, and empty parent maps left behind by a removal are pruned when nobody owns them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, Cause
from .schema import Schema

Path = tuple[str, ...]


class _Node:
    """Marker for a container (map or list item) in a node enumeration."""

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<node>"


NODE = _Node()

# Fields the server manages itself; they are never part of anyone's field set.
_IDENTITY_META = {
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink",
}


@dataclass
class ManagedEntry:
    """One ``metadata.managedFields`` entry: a manager, how it wrote, and the fields it owns."""

    manager: str
    operation: str
    api_version: str
    time: str
    subresource: str = ""
    fields: set[Path] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def describe(self) -> str:
        """How conflict messages name this manager, as the real server does."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return f"{text} using {self.api_version}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode_fields(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


# --- FieldsV1 encoding -------------------------------------------------------------------------


def _sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "." else 1, name)


def encode_fields(paths: set[Path]) -> dict[str, Any]:
    """Render a set of paths as a FieldsV1 tree (``{"f:spec": {"f:x": {}}}``)."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = tree
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}

    def ordered(node: dict[str, Any]) -> dict[str, Any]:
        return {k: ordered(node[k]) for k in sorted(node, key=_sort_key)}

    return ordered(tree)


def decode_fields(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in (tree or {}).items():
        if key == ".":
            out.add(prefix)
            continue
        path = prefix + (key,)
        if not sub:
            out.add(path)
        else:
            out |= decode_fields(sub, path)
    return out


def decode_managed_fields(items: list[dict[str, Any]] | None) -> list[ManagedEntry]:
    entries = []
    for item in items or []:
        if not isinstance(item, dict) or not item.get("manager"):
            continue
        entries.append(
            ManagedEntry(
                manager=item["manager"],
                operation=item.get("operation", "Update"),
                api_version=item.get("apiVersion", ""),
                time=item.get("time", ""),
                subresource=item.get("subresource", ""),
                fields=decode_fields(item.get("fieldsV1") or {}),
            )
        )
    return entries


def path_string(path: Path) -> str:
    """``.spec.containers[name="x"].image``: how the real server prints a field path."""
    out = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            keys = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(keys.items())) + "]")
        elif kind == "v":
            out.append(f"[={rest}]")
        elif kind == "i":
            out.append(f"[{rest}]")
    return "".join(out)


# --- walking objects with their schema ----------------------------------------------------------


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _item_element(item: Any, schema: Schema) -> str | None:
    """The path element naming a list item, or None when the list is atomic."""
    if schema.list_type == "map":
        if not isinstance(item, dict):
            return None
        return "k:" + _compact({k: item[k] for k in schema.list_keys if k in item})
    if schema.list_type == "set":
        return "v:" + _compact(item)
    return None


def _is_granular(value: Any, schema: Schema) -> bool:
    if isinstance(value, dict):
        return bool(value) and not schema.map_atomic
    if isinstance(value, list):
        return bool(value) and schema.list_type in ("map", "set")
    return False


def enumerate_nodes(obj: Any, schema: Schema, *, include_containers: bool) -> dict[Path, Any]:
    """Every path of ``obj`` mapped to its leaf value, or ``NODE`` for owned containers.

    List items of associative lists are always containers. With ``include_containers`` (the
    Update view) non-empty maps and associative lists are containers too, which is how an update
    that creates a map ends up owning it (``.`` in FieldsV1); structs never are.
    """
    out: dict[Path, Any] = {}
    _walk_dict(obj, schema, (), out, include_containers, top=True)
    return out


def _walk_dict(value: dict, schema: Schema, prefix: Path, out: dict, containers: bool, top: bool = False) -> None:
    for key, child in value.items():
        if top and key in ("apiVersion", "kind"):
            continue
        if prefix == ("f:metadata",) and key in _IDENTITY_META:
            continue
        sub = schema.child(key)
        _walk_value(child, sub, prefix + ("f:" + key,), out, containers)


def _walk_value(value: Any, schema: Schema, path: Path, out: dict, containers: bool) -> None:
    if not _is_granular(value, schema):
        out[path] = copy.deepcopy(value)
        return
    if isinstance(value, dict):
        if containers and not schema.is_struct:
            out[path] = NODE
        _walk_dict(value, schema, path, out, containers)
        return
    if containers:
        out[path] = NODE
    items = schema.items()
    for item in value:
        element = _item_element(item, schema)
        if element is None:
            continue
        item_path = path + (element,)
        if element.startswith("v:"):
            out[item_path] = copy.deepcopy(item)
        else:
            out[item_path] = NODE
            _walk_dict(item, items, item_path, out, containers)


# --- reading and removing values by path -------------------------------------------------------


def _find_item(items: list, element: str) -> int | None:
    kind, _, rest = element.partition(":")
    wanted = json.loads(rest)
    for i, item in enumerate(items):
        if kind == "k" and isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
            return i
        if kind == "v" and item == wanted:
            return i
    return None


def remove_path(obj: Any, path: Path) -> bool:
    """Delete the value at ``path`` from ``obj`` in place; False if it was not there."""
    node = obj
    for element in path[:-1]:
        node = _step(node, element)
        if node is None:
            return False
    last = path[-1]
    if last.startswith("f:") and isinstance(node, dict):
        return node.pop(last[2:], _MISSING) is not _MISSING
    if isinstance(node, list):
        index = _find_item(node, last)
        if index is not None:
            del node[index]
            return True
    return False


_MISSING = object()


def _step(node: Any, element: str) -> Any:
    if element.startswith("f:"):
        return node.get(element[2:]) if isinstance(node, dict) else None
    if isinstance(node, list):
        index = _find_item(node, element)
        return node[index] if index is not None else None
    return None


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for element in path:
        node = _step(node, element)
        if node is None:
            return None
    return node


# --- merging an applied configuration -----------------------------------------------------------


def merge_config(live: Any, config: Any, schema: Schema) -> Any:
    """Merge an applied configuration into the live object (maps by key, lists by list type)."""
    if isinstance(config, dict) and isinstance(live, dict) and not schema.map_atomic:
        out = copy.deepcopy(live)
        for key, value in config.items():
            out[key] = merge_config(live.get(key), value, schema.child(key)) if key in live else copy.deepcopy(value)
        return out
    if isinstance(config, list) and isinstance(live, list) and schema.list_type in ("map", "set"):
        out = copy.deepcopy(live)
        items = schema.items()
        for item in config:
            element = _item_element(item, schema)
            index = _find_item(out, element) if element else None
            if index is None:
                out.append(copy.deepcopy(item))
            elif schema.list_type == "map":
                out[index] = merge_config(out[index], item, items)
        return out
    return copy.deepcopy(config)


# --- the two operations ----------------------------------------------------------------------------


def _scoped(obj: dict | None, scope: str) -> dict:
    """The part of an object a write may touch: ``main`` (all but status), ``status`` or ``all``."""
    if not obj:
        return {}
    if scope == "main":
        return {k: v for k, v in obj.items() if k != "status"}
    if scope == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    return obj


def _subresource_of(scope: str) -> str:
    return "status" if scope == "status" else ""


def _drop_empty(entries: list[ManagedEntry]) -> list[ManagedEntry]:
    return [e for e in entries if e.fields]


def _owned_by_others(path: Path, entries: list[ManagedEntry], me: ManagedEntry) -> bool:
    n = len(path)
    for entry in entries:
        if entry is me:
            continue
        for owned in entry.fields:
            if owned[:n] == path:
                return True
    return False


def apply(
    live: dict | None,
    config: dict,
    *,
    manager: str,
    api_version: str,
    schema: Schema,
    force: bool,
    scope: str,
    now: str,
) -> tuple[dict, bool]:
    """Apply ``config`` as ``manager``; return (resulting object, whether anything changed).

    ``live`` is None for create-on-apply. Raises a 409 ApiError listing every conflict unless
    ``force``. The returned object carries the updated ``metadata.managedFields``.
    """
    live = copy.deepcopy(live) if live else {}
    entries = decode_managed_fields((live.get("metadata") or {}).get("managedFields"))
    subresource = _subresource_of(scope)
    config_scoped = _scoped(config, scope)
    config_nodes = enumerate_nodes(config_scoped, schema, include_containers=False)
    live_nodes = enumerate_nodes(_scoped(live, scope), schema, include_containers=False)
    new_set = set(config_nodes)

    mine = next((e for e in entries if e.key == (manager, "Apply", subresource)), None)
    previous = set(mine.fields) if mine else set()

    conflicts: list[tuple[ManagedEntry, Path]] = []
    for entry in entries:
        if entry.manager == manager:
            continue
        for path in sorted(new_set & entry.fields):
            want, have = config_nodes[path], live_nodes.get(path, _MISSING)
            if want is NODE or have is NODE or have is _MISSING:
                continue
            if want != have:
                conflicts.append((entry, path))
    if conflicts and not force:
        raise conflict_error(conflicts)
    for entry, path in conflicts:
        entry.fields.discard(path)

    # Merge what the applier sends; identity metadata and out-of-scope parts come from live.
    merged = copy.deepcopy(live)
    for key, value in config_scoped.items():
        if key in ("apiVersion", "kind"):
            merged.setdefault(key, value)
            continue
        if key == "metadata":
            value = {k: v for k, v in value.items() if k not in _IDENTITY_META}
        merged[key] = merge_config(merged.get(key), value, schema.child(key)) if key in merged else copy.deepcopy(value)

    if mine is None:
        mine = ManagedEntry(manager, "Apply", api_version, now, subresource)
        entries.append(mine)
    # Fields the applier owned before and no longer sends go away, unless someone else owns them.
    for path in sorted(previous - new_set, key=len):
        if any(p[: len(path)] == path for p in new_set):
            continue
        if _owned_by_others(path, entries, mine):
            continue
        if remove_path(merged, path):
            _prune_empty_parents(merged, path, entries, config_nodes)

    changed_fields = mine.fields != new_set
    mine.fields = new_set
    mine.api_version = api_version
    entries = _drop_empty(entries)

    before = copy.deepcopy(live)
    (before.get("metadata") or {}).pop("managedFields", None)
    after = copy.deepcopy(merged)
    (after.get("metadata") or {}).pop("managedFields", None)
    changed = bool(before != after or changed_fields or conflicts or not live)
    if changed:
        mine.time = now
    merged.setdefault("metadata", {})["managedFields"] = [e.to_dict() for e in entries]
    return merged, changed


def _prune_empty_parents(obj: dict, path: Path, entries: list[ManagedEntry], config_nodes: dict) -> None:
    parent = path[:-1]
    while parent:
        value = value_at(obj, parent)
        if value not in ({}, []):
            return
        if parent in config_nodes or any(parent in e.fields for e in entries):
            return
        remove_path(obj, parent)
        parent = parent[:-1]


def record_update(
    old: dict | None,
    new: dict,
    *,
    manager: str,
    api_version: str,
    schema: Schema,
    scope: str,
    now: str,
) -> dict:
    """Attribute the differences between ``old`` and ``new`` to ``manager`` (operation Update)."""
    entries = decode_managed_fields(((old or {}).get("metadata") or {}).get("managedFields"))
    old_nodes = enumerate_nodes(_scoped(old, scope), schema, include_containers=True)
    new_nodes = enumerate_nodes(_scoped(new, scope), schema, include_containers=True)
    changed = {
        p for p, v in new_nodes.items()
        if p not in old_nodes or (v is not NODE and (old_nodes[p] is NODE or old_nodes[p] != v))
    }
    removed = set(old_nodes) - set(new_nodes)
    subresource = _subresource_of(scope)
    for entry in entries:
        entry.fields -= removed
        if entry.key != (manager, "Update", subresource):
            entry.fields -= {p for p in changed if new_nodes[p] is not NODE}
    if changed:
        mine = next((e for e in entries if e.key == (manager, "Update", subresource)), None)
        if mine is None:
            mine = ManagedEntry(manager, "Update", api_version, now, subresource)
            entries.append(mine)
        mine.fields |= changed
        mine.time = now
        mine.api_version = api_version
    result = copy.deepcopy(new)
    result.setdefault("metadata", {})["managedFields"] = [e.to_dict() for e in _drop_empty(entries)]
    return result


def conflict_error(conflicts: list[tuple[ManagedEntry, Path]]) -> ApiError:
    """409 Conflict with the real server's message layout and one cause per conflicting field."""
    causes = [
        Cause("FieldManagerConflict", f"conflict with {entry.describe()}", path_string(path))
        for entry, path in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_string(path)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(entry.describe(), []).append(path_string(path))
        lines = []
        for who in sorted(by_manager):
            lines.append(f"conflicts with {who}:")
            lines.extend(f"- {p}" for p in by_manager[who])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, message, reason="Conflict", causes=causes)
