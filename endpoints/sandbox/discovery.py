"""Discovery documents, OpenAPI v3 documents and server-side Table output.

These are what kubectl (and client-go) read before touching a resource:

* legacy discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``
  (aggregated discovery is not served; clients asking for it with a plain-JSON fallback in their
  ``Accept`` header get the legacy form, clients accepting only the aggregated form get 406);
* ``/version``;
* OpenAPI v3: the ``/openapi/v3`` index and one document per group-version. kubectl uses them to
  learn that the server supports server-side field validation (``fieldValidation``) and to
  explain fields;
* OpenAPI v2: ``/openapi/v2``, one Swagger 2.0 JSON document built from the same operations and
  schemas, for clients that accept JSON. kubectl 1.37 asks for it in protobuf only (client-side
  ``apply``/``diff`` of a custom resource); that ``Accept`` gets 406 and kubectl carries on without
  it, as it did when v2 was not served at all (404);
* ``Table`` responses (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``), which is how
  ``kubectl get`` prints columns such as ``URL`` and ``READY`` for InferenceServices.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from .resources import Registry, ResourceType
from .schema import OBJECT_META_SCHEMA

SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_OBJECT_META_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group_entry(g, vs) for g, vs in sorted(registry.groups().items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.groups().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def _storage_hash(rtype: ResourceType) -> str:
    return hashlib.sha256(rtype.key.encode()).hexdigest()[:11]


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.for_version(group, version)
    if not types:
        return None
    resources = []
    for t in sorted(types, key=lambda t: t.plural):
        entry: dict[str, Any] = {
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs,
            "storageVersionHash": _storage_hash(t),
        }
        if t.short_names:
            entry["shortNames"] = t.short_names
        if t.categories:
            entry["categories"] = t.categories
        resources.append(entry)
        if t.status_subresource:
            resources.append({
                "name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced, "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            })
        if t.key == "/pods":
            resources.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                              "verbs": ["get"]})
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


# --- OpenAPI v3 --------------------------------------------------------------------------------


def _definition_name(rtype: ResourceType, version: str, kind: str | None = None) -> str:
    kind = kind or rtype.kind
    if not rtype.group:
        return f"io.k8s.api.core.{version}.{kind}"
    reversed_group = ".".join(reversed(rtype.group.split(".")))
    return f"{reversed_group}.{version}.{kind}"


def _gvk(rtype: ResourceType, version: str, kind: str | None = None) -> list[dict[str, str]]:
    return [{"group": rtype.group, "version": version, "kind": kind or rtype.kind}]


_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"


@dataclass
class _Param:
    name: str
    description: str
    type: str = "string"
    where: str = "query"


@dataclass
class _Operation:
    """One operation of a group-version, independent of the OpenAPI dialect it is written in."""

    path: str
    method: str
    action: str
    rtype: ResourceType
    returns: str  # definition name of the response body
    params: list[_Param]
    body: str = ""  # "" | "object" | "patch"


_WRITE_PARAMS = [
    _Param("dryRun", "When present, indicates that modifications should not be persisted."),
    _Param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
    _Param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request "
           "(POST/PUT/PATCH) containing unknown or duplicate fields: Ignore, Warn or Strict."),
]
_LIST_PARAMS = [
    _Param("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _Param("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _Param("resourceVersion", "Where to start a list or watch from."),
    _Param("watch", "Watch for changes to the described resources.", "boolean"),
    _Param("allowWatchBookmarks", "Request BOOKMARK events.", "boolean"),
    _Param("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _Param("limit", "Maximum number of responses to return for a list call.", "integer"),
    _Param("continue", "Continue token from a previous list call."),
]


def _patch_types(rtype: ResourceType) -> list[str]:
    return (["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
            + (["application/strategic-merge-patch+json"] if rtype.strategic_merge else []))


def _strip_for_openapi(schema: Any, ref_base: str) -> Any:
    """The CRD schema as an OpenAPI component, with ``metadata`` pointing at ObjectMeta."""
    # Shallow copies only: the document is serialized right away and never mutated below the root.
    out = dict(schema) if isinstance(schema, dict) else {"type": "object"}
    out["properties"] = dict(out.get("properties") or {})
    out["properties"]["metadata"] = {"$ref": f"{ref_base}{_OBJECT_META_REF}"}
    return out


def _group_version(types: list[ResourceType], group: str, version: str,
                   ref_base: str) -> tuple[list[_Operation], dict[str, Any]]:
    """The operations and schemas of one group-version; both OpenAPI documents are written from these."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    operations: list[_Operation] = []
    schemas: dict[str, Any] = {_OBJECT_META_REF: copy.deepcopy(OBJECT_META_SCHEMA)}
    for t in types:
        name = _definition_name(t, version)
        list_name = _definition_name(t, version, t.list_kind)
        component = _strip_for_openapi(t.schema(version).node, ref_base)
        component["x-kubernetes-group-version-kind"] = _gvk(t, version)
        schemas[name] = component
        schemas[list_name] = {
            "type": "object", "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "items": {"type": "array", "items": {"$ref": f"{ref_base}{name}"}},
                           "metadata": {"type": "object"}},
            "x-kubernetes-group-version-kind": _gvk(t, version, t.list_kind),
        }
        base = f"{prefix}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{prefix}/{t.plural}"
        scope = [_Param("namespace", "object name and auth scope", where="path")] if t.namespaced else []
        item = [*scope, _Param("name", f"name of the {t.kind}", where="path")]
        force = _Param("force", "Force apply requests.", "boolean")
        operations += [
            _Operation(base, "get", "list", t, list_name, scope + _LIST_PARAMS),
            _Operation(base, "post", "post", t, name, scope + _WRITE_PARAMS, "object"),
            _Operation(base, "delete", "deletecollection", t, name, scope + _LIST_PARAMS),
        ]
        item_paths = [f"{base}/{{name}}"] + ([f"{base}/{{name}}/status"] if t.status_subresource else [])
        for path in item_paths:
            operations += [
                _Operation(path, "get", "get", t, name, item),
                _Operation(path, "put", "put", t, name, item + _WRITE_PARAMS, "object"),
                _Operation(path, "patch", "patch", t, name, item + _WRITE_PARAMS + [force], "patch"),
            ]
        operations.append(_Operation(f"{base}/{{name}}", "delete", "delete", t, name,
                                     item + [_Param("dryRun", "Dry run.")]))
        if t.namespaced:
            operations.append(_Operation(f"{prefix}/{t.plural}", "get", "list", t, list_name, _LIST_PARAMS))
    return operations, schemas


def _v3_operation(op: _Operation, version: str) -> dict[str, Any]:
    ref = f"{_V3_REF}{op.returns}"
    out: dict[str, Any] = {
        "operationId": f"{op.action}{op.rtype.kind}",
        "parameters": [{"name": p.name, "in": p.where, "description": p.description,
                        "schema": {"type": p.type, "uniqueItems": True}} for p in op.params],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": _gvk(op.rtype, version)[0],
    }
    if op.body:
        types = _patch_types(op.rtype) if op.body == "patch" else ["application/json"]
        out["requestBody"] = {"required": True, "content": {
            t: {"schema": {"type": "object"} if op.body == "patch" else {"$ref": ref}} for t in types}}
    return out


def openapi_v3_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """One group-version's OpenAPI v3 document (paths with their parameters, and schemas)."""
    types = registry.for_version(group, version)
    if not types:
        return None
    operations, schemas = _group_version(types, group, version, _V3_REF)
    paths: dict[str, Any] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _v3_operation(op, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (inference-console sandbox)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


# --- OpenAPI v2 (Swagger 2.0) ------------------------------------------------------------------

# Schema keywords Swagger 2.0 does not have; the real server drops them from CRD schemas for v2.
_NOT_IN_V2 = ("nullable", "anyOf", "oneOf", "allOf", "not")


def _to_v2_schema(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _to_v2_schema(v) for k, v in node.items() if k not in _NOT_IN_V2}
    if isinstance(node, list):
        return [_to_v2_schema(v) for v in node]
    return node


def _v2_operation(op: _Operation, version: str) -> dict[str, Any]:
    ref = {"$ref": f"{_V2_REF}{op.returns}"}
    params: list[dict[str, Any]] = [
        {"name": p.name, "in": p.where, "description": p.description, "type": p.type, "uniqueItems": True,
         **({"required": True} if p.where == "path" else {})}
        for p in op.params
    ]
    if op.body:
        params.insert(0, {"name": "body", "in": "body", "required": True,
                          "schema": {"type": "object"} if op.body == "patch" else ref})
    return {
        "operationId": f"{op.action}{op.rtype.kind}",
        "consumes": _patch_types(op.rtype) if op.body == "patch" else ["*/*"],
        "produces": ["application/json", "application/yaml"],
        "schemes": ["https"],
        "parameters": params,
        "responses": {"200": {"description": "OK", "schema": ref}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": _gvk(op.rtype, version)[0],
    }


def openapi_v2_document(registry: Registry) -> dict[str, Any]:
    """``/openapi/v2``: one Swagger 2.0 document for every served group-version, written from the
    same operations and schemas as the per-group-version OpenAPI v3 documents."""
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for group, versions in sorted(registry.groups().items()):
        for version in versions:
            operations, schemas = _group_version(registry.for_version(group, version), group, version, _V2_REF)
            for op in operations:
                paths.setdefault(op.path, {})[op.method] = _v2_operation(op, version)
            definitions.update({name: _to_v2_schema(schema) for name, schema in schemas.items()})
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes (inference-console sandbox)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }


def openapi_v3_index(registry: Registry, hashes: dict[str, str]) -> dict[str, Any]:
    """``/openapi/v3``: one entry per group-version, with a content hash as client-go expects."""
    paths = {}
    for group, versions in sorted(registry.groups().items()):
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={hashes.get(key, '0')}"}
    return {"paths": paths}


def document_hash(serialized: bytes) -> str:
    return hashlib.sha512(serialized).hexdigest()[:64].upper()


# --- Table ------------------------------------------------------------------------------------


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(rtype: ResourceType, version: str, objects: list[dict[str, Any]], resource_version: str | None, *,
          include_object: str = "Metadata", table_version: str = "v1") -> dict[str, Any]:
    """A ``meta.k8s.io`` Table of the objects with the type's printer columns."""
    columns = rtype.printer_columns(version)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [c.value(obj) for c in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    meta = {"resourceVersion": resource_version} if resource_version else {}
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": meta,
        "columnDefinitions": [
            {"name": c.name, "type": c.type if c.type != "date" else "string", "format": c.format,
             "description": c.description or c.name, "priority": c.priority}
            for c in columns
        ],
        "rows": rows,
    }
