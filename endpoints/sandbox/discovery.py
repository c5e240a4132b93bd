"""Discovery documents, OpenAPI v3 documents and server-side Table output.

These are what kubectl (and client-go) read before touching a resource:

* legacy discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``
  (aggregated discovery is not served; clients asking for it with a plain-JSON fallback in their
  ``Accept`` header get the legacy form, clients accepting only the aggregated form get 406);
* ``/version``;
* OpenAPI v3: the ``/openapi/v3`` index and one document per group-version. kubectl uses them to
  learn that the server supports server-side field validation (``fieldValidation``) and to
  explain fields. ``/openapi/v2`` is not served (404), which kubectl tolerates once v3 exists;
* ``Table`` responses (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``), which is how
  ``kubectl get`` prints columns such as ``URL`` and ``READY`` for InferenceServices.
"""

from __future__ import annotations

import copy
import hashlib
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


def _param(name: str, description: str, type_: str = "string", where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "schema": {"type": type_, "uniqueItems": True}}


_WRITE_PARAMS = [
    _param("dryRun", "When present, indicates that modifications should not be persisted."),
    _param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
    _param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request "
           "(POST/PUT/PATCH) containing unknown or duplicate fields: Ignore, Warn or Strict."),
]
_LIST_PARAMS = [
    _param("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _param("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _param("resourceVersion", "Where to start a list or watch from."),
    _param("watch", "Watch for changes to the described resources.", "boolean"),
    _param("allowWatchBookmarks", "Request BOOKMARK events.", "boolean"),
    _param("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _param("limit", "Maximum number of responses to return for a list call.", "integer"),
    _param("continue", "Continue token from a previous list call."),
]


def _op(action: str, rtype: ResourceType, version: str, ref: str, params: list[dict], *, body: bool = False,
        patch: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rtype.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rtype, version)[0],
    }
    if body:
        types = (["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
                 + (["application/strategic-merge-patch+json"] if rtype.strategic_merge else [])) if patch \
            else ["application/json"]
        op["requestBody"] = {"required": True,
                             "content": {t: {"schema": {"type": "object"} if patch else {"$ref": ref}} for t in types}}
    return op


def _strip_for_openapi(schema: Any) -> Any:
    """The CRD schema as an OpenAPI component, with ``metadata`` pointing at ObjectMeta."""
    # Shallow copies only: the document is serialized right away and never mutated below the root.
    out = dict(schema) if isinstance(schema, dict) else {"type": "object"}
    out["properties"] = dict(out.get("properties") or {})
    out["properties"]["metadata"] = {"$ref": f"#/components/schemas/{_OBJECT_META_REF}"}
    return out


def openapi_v3_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """One group-version's OpenAPI v3 document (paths with their parameters, and schemas)."""
    types = registry.for_version(group, version)
    if not types:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {_OBJECT_META_REF: copy.deepcopy(OBJECT_META_SCHEMA)}
    for t in types:
        name = _definition_name(t, version)
        list_name = _definition_name(t, version, t.list_kind)
        ref, list_ref = f"#/components/schemas/{name}", f"#/components/schemas/{list_name}"
        component = _strip_for_openapi(t.schema(version).node)
        component["x-kubernetes-group-version-kind"] = _gvk(t, version)
        schemas[name] = component
        schemas[list_name] = {
            "type": "object", "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "items": {"type": "array", "items": {"$ref": ref}}, "metadata": {"type": "object"}},
            "x-kubernetes-group-version-kind": _gvk(t, version, t.list_kind),
        }
        base = f"{prefix}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{prefix}/{t.plural}"
        scope_params = [_param("namespace", "object name and auth scope", where="path")] if t.namespaced else []
        item_params = scope_params + [_param("name", f"name of the {t.kind}", where="path")]
        paths[base] = {
            "get": _op("list", t, version, list_ref, scope_params + _LIST_PARAMS),
            "post": _op("post", t, version, ref, scope_params + _WRITE_PARAMS, body=True),
            "delete": _op("deletecollection", t, version, ref, scope_params + _LIST_PARAMS),
        }
        item = {
            "get": _op("get", t, version, ref, item_params),
            "put": _op("put", t, version, ref, item_params + _WRITE_PARAMS, body=True),
            "patch": _op("patch", t, version, ref,
                         item_params + _WRITE_PARAMS + [_param("force", "Force apply requests.", "boolean")],
                         body=True, patch=True),
            "delete": _op("delete", t, version, ref, item_params + [_param("dryRun", "Dry run.")]),
        }
        paths[f"{base}/{{name}}"] = item
        if t.status_subresource:
            paths[f"{base}/{{name}}/status"] = {k: v for k, v in item.items() if k != "delete"}
        if t.namespaced:
            paths[f"{prefix}/{t.plural}"] = {"get": _op("list", t, version, list_ref, _LIST_PARAMS)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (inference-console sandbox)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
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
