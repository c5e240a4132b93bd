"""The fake API server's in-memory object store: the "etcd + registry" half of the server.

Two faces:

* ``api_*`` methods implement the REST semantics for the HTTP layer (create / get / list /
  replace / patch / server-side apply / delete / deletecollection, dry-run, field validation,
  preconditions, finalizers, status subresource, managedFields, generation, resourceVersion).
* A plain Python API (``get``, ``list``, ``create``, ``update``, ``patch``, ``update_status``,
  ``delete``, ``remove_finalizer``, ``seed``, ``add_event``, ``set_pod``, ``on_change``) for tests
  and for the simulated KServe controller, going through the same code paths.

Every successful write bumps one global resourceVersion counter (as etcd's revision does) and
appends to a bounded history that watches replay from; the oldest evicted revision marks the
point before which a watch gets ``410 Gone``. All state sits behind one re-entrant lock;
change callbacks run after the lock is released, in commit order.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import json
import logging
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import ssa
from .errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    invalid,
    not_found,
    qualified,
    stale_conflict,
)
from .patches import json_patch, merge_patch, strategic_merge_patch
from .resources import Registry, ResourceType
from .schema import apply_defaults, drop_nulls, prune, validate, validate_object_meta
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    """Per-request knobs of a write (query parameters, resolved)."""

    manager: str = "unknown"
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    dry_run: bool = False
    force: bool = False
    version: str | None = None
    explicit_manager: bool = False
    # Strict-decoding findings of the request body (repeated keys), worded as the real decoders do:
    # ``decode_errors`` join into a Strict error message, ``decode_warnings`` become Warn headers.
    decode_errors: list[str] = field(default_factory=list)
    decode_warnings: list[str] = field(default_factory=list)


@dataclass
class WriteResult:
    """What a write produced: the object (or Status), the HTTP code and any warnings."""

    obj: dict[str, Any]
    code: int = 200
    warnings: list[str] = field(default_factory=list)


@dataclass
class HistoryEntry:
    """One committed change, as replayed to watchers."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str  # ResourceType.key
    obj: dict[str, Any]
    prev: dict[str, Any] | None


@dataclass
class ChangeEvent:
    """Passed to ``on_change`` callbacks after a write is committed."""

    type: str
    resource: str  # plural, e.g. "inferenceservices"
    group: str
    namespace: str
    name: str
    object: dict[str, Any]
    old_object: dict[str, Any] | None


def _meta(obj: dict) -> dict:
    return obj.setdefault("metadata", {})


def _without(obj: dict, *keys: str) -> dict:
    return {k: v for k, v in obj.items() if k not in keys}


def _spec_part(obj: dict) -> dict:
    """What ``metadata.generation`` tracks: everything but metadata and status."""
    return _without(obj, "metadata", "status", "apiVersion", "kind")


def _comparable(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for key in ("managedFields", "resourceVersion"):
        meta.pop(key, None)
    return out


def _go_string_slice(values: Iterable[str]) -> str:
    """Go's ``%#v`` of a ``[]string`` (how the real server prints the offending finalizers)."""
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def _validate_meta_update(meta: dict, old_meta: dict) -> list[Cause]:
    """The parts of the real ``ValidateObjectMetaAccessorUpdate`` the fake server checks.

    While an object is being deleted no finalizer may be added (removing or keeping them is fine).
    """
    causes: list[Cause] = []
    if old_meta.get("deletionTimestamp"):
        added = sorted(set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or []))
        if added:
            causes.append(Cause(
                "FieldValueForbidden",
                "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers "
                + _go_string_slice(added),
                "metadata.finalizers",
            ))
    return causes


def _uid_immutable(rtype: ResourceType, name: str, new_uid: Any, old_uid: Any) -> ApiError:
    """422 for a patch or apply that would change ``metadata.uid`` (the real server's immutability check)."""
    return invalid(rtype.kind, rtype.group, name, [
        Cause("FieldValueInvalid", f"Invalid value: {json.dumps(str(new_uid))}: field is immutable", "metadata.uid")])


class Store:
    """Thread-safe object store with Kubernetes API semantics (see module docstring)."""

    def __init__(
        self,
        registry: Registry,
        *,
        history_limit: int = 1000,
        namespaces: Iterable[str] = ("default", "kube-system", "kube-public"),
    ):
        self.registry = registry
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._objects: dict[str, dict[tuple[str, str], dict]] = {}
        self._rv = 0
        self._history: deque[HistoryEntry] = deque()
        self._history_limit = history_limit
        self._compacted_rv = 0
        self._listeners: list[Callable[[ChangeEvent], None]] = []
        self._pending: list[ChangeEvent] = []
        self._dispatch_lock = threading.RLock()
        self._closed = False
        self._logs: dict[tuple[str, str, str], str] = {}
        # The log of a container's previous instance (``?previous=true``) and which run the
        # current log belongs to, so a restart moves the current one there.
        self._previous_logs: dict[tuple[str, str, str], str] = {}
        self._log_runs: dict[tuple[str, str, str], int] = {}
        self._last_event_stamp = 0
        # plural -> [(mutate, validate, webhook name)]: admission webhooks (the simulated
        # KServe controller registers its defaulting and validation here).
        self._admission: dict[str, list[tuple[Callable | None, Callable | None, str]]] = {}
        for ns in namespaces:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, manager="sandbox")

    # ==================================================================================
    # bookkeeping
    # ==================================================================================

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    @property
    def compacted_resource_version(self) -> int:
        with self._lock:
            return self._compacted_rv

    def close(self) -> None:
        """Wake every waiting watcher so it can finish (used on server stop)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], dict]:
        return self._objects.setdefault(rtype.key, {})

    def _commit(self, rtype: ResourceType, event: str, obj: dict, prev: dict | None) -> dict:
        """Persist a write: new resourceVersion, history entry, notify watchers and listeners."""
        self._rv += 1
        _meta(obj)["resourceVersion"] = str(self._rv)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if event == "DELETED":
            self._bucket(rtype).pop(key, None)
            if rtype.plural == "pods" and not rtype.group:  # a pod's logs go with it
                for log_key in [k for k in self._logs if k[:2] == key]:
                    del self._logs[log_key]
                for log_key in [k for k in self._previous_logs if k[:2] == key]:
                    del self._previous_logs[log_key]
        else:
            self._bucket(rtype)[key] = obj
        stored = copy.deepcopy(obj)
        self._history.append(HistoryEntry(self._rv, event, rtype.key, stored, copy.deepcopy(prev) if prev else None))
        while len(self._history) > self._history_limit:
            self._compacted_rv = self._history.popleft().rv
        self._pending.append(
            ChangeEvent(event, rtype.plural, rtype.group, key[0], key[1], copy.deepcopy(stored),
                        copy.deepcopy(prev) if prev else None)
        )
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def _dispatch(self) -> None:
        """Run change callbacks outside the store lock, in commit order."""
        with self._dispatch_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    event = self._pending.pop(0)
                    listeners = list(self._listeners)
                for callback in listeners:
                    try:
                        callback(event)
                    except Exception:  # noqa: BLE001 - a broken callback must not break the server
                        log.exception("on_change callback failed")

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> Callable[[], None]:
        """Register ``callback(ChangeEvent)`` for every committed write; returns an unsubscribe function.

        Callbacks run in the writing thread after the store lock is released; they may call
        back into the store (writes they make are dispatched after they return).
        """
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    # ==================================================================================
    # shared write helpers
    # ==================================================================================

    def _check_namespace(self, rtype: ResourceType, namespace: str, *, creating: bool, name: str) -> None:
        if not rtype.namespaced:
            return
        ns_type = self.registry.lookup("namespaces")
        ns_obj = self._bucket(ns_type).get(("", namespace))
        if ns_obj is None:
            raise not_found("namespaces", "", namespace)
        if creating and (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
            raise ApiError(
                403,
                f'{rtype.plural}{"." + rtype.group if rtype.group else ""} "{name}" is forbidden: unable to create '
                f"new content in namespace {namespace} because it is being terminated",
                name=name, group=rtype.group, kind=rtype.plural,
            )

    def _check_type_and_identity(self, rtype: ResourceType, body: Any, namespace: str, name: str | None,
                                 version: str | None) -> dict:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format - object expected")
        expected = rtype.api_version(version)
        if body.get("apiVersion") and body["apiVersion"] != expected:
            raise bad_request(
                f"the API version in the data ({body['apiVersion']}) does not match the expected API version ({expected})"
            )
        if body.get("kind") and body["kind"] != rtype.kind and rtype.group:
            # Custom resources: the real CR validator's ValidateTypeMeta.
            name_ = ((body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}).get("name") or name
            raise invalid(rtype.kind, rtype.group, name_ or "", [
                Cause("FieldValueInvalid", f"Invalid value: {json.dumps(str(body['kind']))}: must be {rtype.kind}", "kind")])
        if body.get("kind") and body["kind"] != rtype.kind:
            raise bad_request(f"the kind in the data ({body['kind']}) does not match the expected kind ({rtype.kind})")
        body.setdefault("apiVersion", expected)
        body.setdefault("kind", rtype.kind)
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
            meta["name"] = name
        return body

    def _unknown_fields(self, rtype: ResourceType, obj: dict, opts: WriteOptions, warnings: list[str], *,
                        apply_request: bool, patch: Any = None) -> None:
        """Prune undeclared fields; Strict turns them (and repeated keys of the body) into an error,
        Warn into Warning headers. ``patch`` is the patch body of a non-apply patch: the real server
        reports a patch's strict-decoding errors as 422 on the field ``patch``."""
        unknown = prune(obj, rtype.schema(opts.version))
        decode_errors = [] if apply_request else opts.decode_errors
        if not unknown and not decode_errors:
            return
        if opts.field_validation == "Strict":
            name = (obj.get("metadata") or {}).get("name", "")
            if apply_request:
                causes = [Cause("FieldValueInvalid", "field not declared in schema", p) for p in unknown]
                raise invalid(rtype.kind, rtype.group, name, causes)
            listed = ", ".join([*decode_errors, *(f'unknown field "{p}"' for p in unknown)])
            if patch is not None:
                value = json.dumps(json.dumps(patch, separators=(",", ":")))
                raise ApiError(422, f' "" is invalid: patch: Invalid value: {value}: strict decoding error: {listed}',
                               causes=[Cause("FieldValueInvalid", f"Invalid value: {value}: strict decoding error: "
                                             f"{listed}", "patch")])
            raise ApiError(
                400,
                f'{rtype.kind} in version "{opts.version or rtype.version}" cannot be handled as a {rtype.kind}: '
                f"strict decoding error: {listed}",
                reason="BadRequest",
                name=name, group=rtype.group, kind=rtype.kind,
                causes=[Cause("FieldValueInvalid", f'unknown field "{p}"', p) for p in unknown],
            )
        if opts.field_validation == "Warn":
            if not apply_request:
                warnings.extend(opts.decode_warnings)
            warnings.extend(f'unknown field "{p}"' for p in unknown)

    def _finish_object(self, rtype: ResourceType, obj: dict, opts: WriteOptions, old: dict | None) -> dict:
        """Defaulting, kind-specific mutation and validation of the object about to be stored."""
        schema = rtype.schema(opts.version)
        drop_nulls(obj, schema)
        apply_defaults(obj, schema)
        self._mutate_kind(rtype, obj, old)
        self._admit(rtype, obj, old)
        causes = validate_object_meta(obj.get("metadata") or {}, namespaced=rtype.namespaced,
                                      name_is_label=rtype.plural == "namespaces")
        causes += validate(_without(obj, "metadata"), schema)
        causes += self._validate_kind(rtype, obj, old)
        if old is not None:
            causes += _validate_meta_update(obj.get("metadata") or {}, old.get("metadata") or {})
        if causes:
            raise invalid(rtype.kind, rtype.group, obj["metadata"].get("name", ""), causes)
        obj["apiVersion"] = rtype.api_version(opts.version)
        obj["kind"] = rtype.kind
        return obj

    def add_admission(self, resource: str, *, mutate: Callable[[dict, dict | None], None] | None = None,
                      validate: Callable[[dict, dict | None], str | None] | None = None,
                      name: str = "webhook.sandbox") -> None:
        """Register an admission webhook for ``resource``: ``mutate(obj, old)`` edits the object
        in place before validation (its changes are attributed to the writer, as with real
        mutating webhooks); ``validate(obj, old)`` returns a denial message or None. A denial
        answers 403 like a controller-runtime validating webhook."""
        rtype = self._type(resource)
        with self._lock:
            self._admission.setdefault(rtype.plural, []).append((mutate, validate, name))

    def _admit(self, rtype: ResourceType, obj: dict, old: dict | None) -> None:
        hooks = self._admission.get(rtype.plural, ())
        for mutate, _validate, _name in hooks:
            if mutate is not None:
                mutate(obj, old)
        for _mutate, validate_hook, name in hooks:
            message = validate_hook(obj, old) if validate_hook is not None else None
            if message:
                raise ApiError(403, f'admission webhook "{name}" denied the request: {message}',
                               name=(obj.get("metadata") or {}).get("name", ""), group=rtype.group,
                               kind=rtype.kind)

    def _mutate_kind(self, rtype: ResourceType, obj: dict, old: dict | None) -> None:
        if rtype.key == "/secrets":
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                data = obj.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
            obj.setdefault("type", "Opaque")
        elif rtype.key == "/namespaces":
            status = obj.setdefault("status", {})
            status.setdefault("phase", "Active")
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        elif rtype.key == "/pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")

    def _validate_kind(self, rtype: ResourceType, obj: dict, old: dict | None) -> list[Cause]:
        causes: list[Cause] = []
        if rtype.key == "/secrets":
            for key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    causes.append(Cause("FieldValueInvalid", 'Invalid value: "<secret contents redacted>": illegal '
                                        "base64 data", f"data[{key}]"))
            if old is not None and old.get("immutable") and _without(obj, "metadata") != _without(old, "metadata"):
                causes.append(Cause("FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set", "data"))
        elif rtype.key == "/configmaps" and old is not None and old.get("immutable") and \
                _without(obj, "metadata") != _without(old, "metadata"):
            causes.append(Cause("FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set", "data"))
        return causes

    def _carry_system_meta(self, new: dict, old: dict) -> None:
        """Fields only the server sets survive whatever the client sent."""
        meta, old_meta = _meta(new), old.get("metadata") or {}
        for key in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "resourceVersion"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)

    def _finalize_update(self, rtype: ResourceType, old: dict, new: dict, opts: WriteOptions,
                         warnings: list[str]) -> WriteResult:
        """Generation bump, finalizer-driven removal, no-op detection and commit of an update."""
        meta = _meta(new)
        if _spec_part(new) != _spec_part(old):
            meta["generation"] = int((old.get("metadata") or {}).get("generation") or 1) + 1
        if _comparable(new) == _comparable(old) and _meta(new).get("managedFields") == _meta(old).get("managedFields"):
            return WriteResult(copy.deepcopy(old), 200, warnings)
        deleting = bool(meta.get("deletionTimestamp"))
        if opts.dry_run:
            return WriteResult(copy.deepcopy(new), 200, warnings)
        if deleting and not meta.get("finalizers"):
            removed = self._commit(rtype, "DELETED", new, old)
            self._after_removal(rtype, removed)
            return WriteResult(removed, 200, warnings)
        return WriteResult(self._commit(rtype, "MODIFIED", new, old), 200, warnings)

    def _scope(self, rtype: ResourceType, subresource: str | None) -> str:
        if subresource == "status":
            return "status"
        return "main" if rtype.status_subresource else "all"

    def _get_stored(self, rtype: ResourceType, namespace: str, name: str) -> dict | None:
        return self._bucket(rtype).get((namespace if rtype.namespaced else "", name))

    def _require(self, rtype: ResourceType, namespace: str, name: str) -> dict:
        obj = self._get_stored(rtype, namespace, name)
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return obj

    @staticmethod
    def _check_subresource(rtype: ResourceType, subresource: str | None) -> None:
        if subresource and not (subresource == "status" and (rtype.status_subresource or rtype.plural == "namespaces")):
            raise ApiError(404, "the server could not find the requested resource", reason="NotFound")

    # ==================================================================================
    # REST operations (used by the HTTP layer)
    # ==================================================================================

    def api_get(self, rtype: ResourceType, namespace: str, name: str, subresource: str | None = None,
                version: str | None = None) -> dict:
        self._check_subresource(rtype, subresource)
        with self._lock:
            obj = copy.deepcopy(self._require(rtype, namespace, name))
        obj["apiVersion"] = rtype.api_version(version)
        return obj

    def api_list(self, rtype: ResourceType, namespace: str | None, *, label_selector: str | None = None,
                 field_selector: str | None = None, version: str | None = None) -> tuple[list[dict], int]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        for req in fields:
            rtype.field_value({}, req.field)  # 400 for unsupported fields, even on empty lists
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._bucket(rtype).items())
                if (not namespace or ns == namespace)
                and labels_match(labels, obj["metadata"].get("labels"))
                and fields_match(fields, obj, rtype.field_value)
            ]
            rv = self._rv
        for obj in items:
            obj["apiVersion"] = rtype.api_version(version)
        return items, rv

    def api_create(self, rtype: ResourceType, namespace: str, body: Any, opts: WriteOptions,
                   subresource: str | None = None) -> WriteResult:
        if subresource:
            raise ApiError(405, f"the server does not allow this method on the requested resource ({subresource})")
        body = copy.deepcopy(body)
        self._check_type_and_identity(rtype, body, namespace, None, opts.version)
        meta = body["metadata"]
        warnings: list[str] = []
        with self._lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            name = meta.get("name") or ""
            if name:
                self._check_namespace(rtype, namespace, creating=True, name=name)
                if self._get_stored(rtype, namespace, name) is not None:
                    raise already_exists(rtype.plural, rtype.group, name)
            if rtype.status_subresource and rtype.plural not in ("pods", "namespaces"):
                body.pop("status", None)
            self._unknown_fields(rtype, body, opts, warnings, apply_request=False)
            obj = self._finish_object(rtype, body, opts, None)
            self._stamp_new(obj)
            obj = ssa.record_update(None, obj, manager=opts.manager, api_version=rtype.api_version(opts.version),
                                    schema=rtype.schema(opts.version), scope="all", now=now_rfc3339())
            if opts.dry_run:
                _meta(obj).pop("resourceVersion", None)
                return WriteResult(obj, 201, warnings)
            created = self._commit(rtype, "ADDED", obj, None)
        self._dispatch()
        return WriteResult(created, 201, warnings)

    @staticmethod
    def _stamp_new(obj: dict) -> None:
        meta = _meta(obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            meta.pop(key, None)
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)

    def _check_resource_version(self, rtype: ResourceType, old: dict, wanted: str | None, *, required: bool) -> None:
        name = old["metadata"]["name"]
        if not wanted:
            if required:
                raise invalid(rtype.kind, rtype.group, name, [
                    Cause("FieldValueInvalid", "Invalid value: 0x0: must be specified for an update",
                          "metadata.resourceVersion")])
            return
        if wanted != old["metadata"].get("resourceVersion"):
            raise stale_conflict(rtype.plural, rtype.group, name)

    def api_replace(self, rtype: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions,
                    subresource: str | None = None) -> WriteResult:
        self._check_subresource(rtype, subresource)
        body = copy.deepcopy(body)
        if isinstance(body, dict) and isinstance(body.get("metadata"), dict | None) \
                and not (body.get("metadata") or {}).get("name"):
            # The real update handler compares the body's name with the URL's, even when it is empty.
            raise bad_request(f"the name of the object () does not match the name on the URL ({name})")
        self._check_type_and_identity(rtype, body, namespace, name, opts.version)
        warnings: list[str] = []
        with self._lock:
            old = self._require(rtype, namespace, name)
            # A uid in a PUT body is a precondition (the real registry's defaultUpdatedObjectInfo).
            wanted_uid = body["metadata"].get("uid")
            if wanted_uid and wanted_uid != old["metadata"].get("uid"):
                raise ApiError(
                    409,
                    f'Operation cannot be fulfilled on {qualified(rtype.plural, rtype.group)} "{name}": Precondition '
                    f'failed: UID in precondition: {wanted_uid}, UID in object meta: {old["metadata"].get("uid", "")}',
                    reason="Conflict", name=name, group=rtype.group, kind=rtype.plural,
                )
            # Custom resources refuse unconditional updates; core kinds allow them.
            self._check_resource_version(rtype, old, body["metadata"].get("resourceVersion"),
                                         required=bool(rtype.group))
            scope = self._scope(rtype, subresource)
            if scope == "status":
                new = copy.deepcopy(old)
                if "status" in body:
                    new["status"] = body["status"]
                else:
                    new.pop("status", None)
            else:
                new = body
                if scope == "main":
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
            self._unknown_fields(rtype, new, opts, warnings, apply_request=False)
            self._carry_system_meta(new, old)
            new = self._finish_object(rtype, new, opts, old)
            new = ssa.record_update(old, new, manager=opts.manager, api_version=rtype.api_version(opts.version),
                                    schema=rtype.schema(opts.version), scope=scope, now=now_rfc3339())
            result = self._finalize_update(rtype, old, new, opts, warnings)
        self._dispatch()
        return result

    def api_patch(self, rtype: ResourceType, namespace: str, name: str, patch_type: str, body: Any,
                  opts: WriteOptions, subresource: str | None = None) -> WriteResult:
        self._check_subresource(rtype, subresource)
        if patch_type == APPLY_PATCH:
            return self._apply(rtype, namespace, name, body, opts, subresource)
        if opts.force:
            raise invalid(rtype.kind, rtype.group, name, [
                Cause("FieldValueInvalid", "Invalid value: true: may not be specified for non-apply patch", "force")])
        if patch_type == STRATEGIC_PATCH and not rtype.strategic_merge:
            raise ApiError(415, "the body of the request was in an unknown format - accepted media types include: "
                           "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        warnings: list[str] = []
        with self._lock:
            old = self._require(rtype, namespace, name)
            scope = self._scope(rtype, subresource)
            if patch_type == MERGE_PATCH:
                if not isinstance(body, dict):
                    raise bad_request("the body of the request was in an unknown format - merge patch must be an object")
                patched = merge_patch(old, body)
            elif patch_type == JSON_PATCH:
                patched = json_patch(old, body)
            elif patch_type == STRATEGIC_PATCH:
                if not isinstance(body, dict):
                    raise bad_request("the body of the request was in an unknown format - patch must be an object")
                patched = strategic_merge_patch(old, body, rtype.schema(opts.version))
            else:
                raise ApiError(415, f"the body of the request was in an unknown format - unsupported patch type {patch_type!r}")
            if not isinstance(patched, dict):
                raise bad_request("the patched object is not an object")
            wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted_rv != old["metadata"].get("resourceVersion"):
                self._check_resource_version(rtype, old, wanted_rv, required=False)
            if scope == "status":
                new = copy.deepcopy(old)
                if "status" in patched:
                    new["status"] = patched["status"]
                else:
                    new.pop("status", None)
            else:
                new = patched
                if scope == "main":
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
            self._check_type_and_identity(rtype, new, namespace, name, opts.version)
            new_uid = new["metadata"].get("uid")
            if new_uid and new_uid != old["metadata"].get("uid"):
                raise _uid_immutable(rtype, name, new_uid, old["metadata"].get("uid"))
            self._unknown_fields(rtype, new, opts, warnings, apply_request=False,
                                patch=copy.deepcopy(new) if opts.field_validation == "Strict" else {})
            self._carry_system_meta(new, old)
            new = self._finish_object(rtype, new, opts, old)
            new = ssa.record_update(old, new, manager=opts.manager, api_version=rtype.api_version(opts.version),
                                    schema=rtype.schema(opts.version), scope=scope, now=now_rfc3339())
            result = self._finalize_update(rtype, old, new, opts, warnings)
        self._dispatch()
        return result

    def _apply(self, rtype: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions,
               subresource: str | None) -> WriteResult:
        if not opts.explicit_manager:
            raise bad_request("PATCH is not supported for apply requests without a fieldManager: "
                              "fieldManager is required for apply patch")
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format - apply patch must be an object")
        config = copy.deepcopy(body)
        if not config.get("apiVersion") or not config.get("kind"):
            raise bad_request("invalid object type: apiVersion and kind must be set in an apply patch")
        self._check_type_and_identity(rtype, config, namespace, name, opts.version)
        if config["metadata"].get("managedFields") is not None:
            # structured-merge-diff refuses an applied configuration that carries field ownership
            # (any managedFields value but null, even an empty list).
            raise bad_request("metadata.managedFields must be nil")
        warnings: list[str] = []
        scope = self._scope(rtype, subresource)
        schema = rtype.schema(opts.version)
        with self._lock:
            old = self._get_stored(rtype, namespace, name)
            if old is None and scope == "status":
                raise not_found(rtype.plural, rtype.group, name)
            applied_uid = config["metadata"].get("uid")
            if applied_uid and old is None:
                raise ApiError(
                    409,
                    f'Operation cannot be fulfilled on {qualified(rtype.plural, rtype.group)} "{name}": uid mismatch: '
                    f"the provided object specified uid {applied_uid}, and no existing object was found",
                    reason="Conflict", name=name, group=rtype.group, kind=rtype.plural,
                )
            if applied_uid and applied_uid != old["metadata"].get("uid"):
                raise _uid_immutable(rtype, name, applied_uid, old["metadata"].get("uid"))
            if old is None:
                self._check_namespace(rtype, namespace, creating=True, name=name)
            if scope == "main":
                config.pop("status", None)
            self._unknown_fields(rtype, config, opts, warnings, apply_request=True)
            drop_nulls(config, schema)
            wanted_rv = config["metadata"].get("resourceVersion")
            if old is not None and wanted_rv:
                self._check_resource_version(rtype, old, wanted_rv, required=False)
            merged, changed = ssa.apply(
                old, config, manager=opts.manager, api_version=rtype.api_version(opts.version), schema=schema,
                force=opts.force, scope=scope, now=now_rfc3339(),
            )
            # The real apply patcher strict-decodes the body as YAML after merging (so conflicts come first).
            if opts.decode_errors and opts.field_validation == "Strict":
                raise bad_request("error strict decoding YAML: error converting YAML to JSON: "
                                  + "; ".join(opts.decode_errors))
            if opts.field_validation == "Warn":
                warnings.extend(opts.decode_warnings)
            if old is not None and not changed:
                return WriteResult(copy.deepcopy(old), 200, warnings)
            merged["metadata"]["name"] = name
            if rtype.namespaced:
                merged["metadata"]["namespace"] = namespace
            if old is None:
                merged = self._finish_object(rtype, merged, opts, None)
                managed = merged["metadata"].get("managedFields")
                self._stamp_new(merged)
                merged["metadata"]["managedFields"] = managed
                if opts.dry_run:
                    return WriteResult(merged, 201, warnings)
                created = self._commit(rtype, "ADDED", merged, None)
                result = WriteResult(created, 201, warnings)
            else:
                self._carry_system_meta(merged, old)
                merged = self._finish_object(rtype, merged, opts, old)
                result = self._finalize_update(rtype, old, merged, opts, warnings)
        self._dispatch()
        return result

    def api_delete(self, rtype: ResourceType, namespace: str, name: str, opts: WriteOptions,
                   preconditions: dict | None = None, propagation: str | None = None) -> WriteResult:
        with self._lock:
            old = self._require(rtype, namespace, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
                raise ApiError(409, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                               f"{old['metadata'].get('uid')}", name=name, group=rtype.group, kind=rtype.plural)
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get("resourceVersion"):
                raise ApiError(409, f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                               f"ResourceVersion in object meta: {old['metadata'].get('resourceVersion')}",
                               name=name, group=rtype.group, kind=rtype.plural)
            result = self._delete_locked(rtype, old, opts.dry_run, propagation)
        self._dispatch()
        return result

    def _delete_locked(self, rtype: ResourceType, old: dict, dry_run: bool, propagation: str | None) -> WriteResult:
        new = copy.deepcopy(old)
        meta = _meta(new)
        if rtype.plural == "namespaces":
            return self._delete_namespace_locked(rtype, new, dry_run)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return WriteResult(new, 200)
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            if dry_run:
                return WriteResult(new, 200)
            return WriteResult(self._commit(rtype, "MODIFIED", new, old), 200)
        if dry_run:
            return WriteResult(new, 200)
        removed = self._commit(rtype, "DELETED", new, old)
        self._after_removal(rtype, removed, orphan=propagation == "Orphan")
        return WriteResult(removed, 200)

    def _delete_namespace_locked(self, rtype: ResourceType, ns_obj: dict, dry_run: bool) -> WriteResult:
        name = ns_obj["metadata"]["name"]
        if dry_run:
            return WriteResult(ns_obj, 200)
        if not ns_obj["metadata"].get("deletionTimestamp"):
            old = copy.deepcopy(ns_obj)
            ns_obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            ns_obj.setdefault("status", {})["phase"] = "Terminating"
            ns_obj = self._commit(rtype, "MODIFIED", ns_obj, old)
        for other in self.registry.all():
            if not other.namespaced:
                continue
            for (ns, _), obj in list(self._bucket(other).items()):
                if ns == name:
                    self._delete_locked(other, obj, False, None)
        self._maybe_finish_namespace(name)
        return WriteResult(copy.deepcopy(self._get_stored(rtype, "", name) or ns_obj), 200)

    def _maybe_finish_namespace(self, name: str) -> None:
        ns_type = self.registry.lookup("namespaces")
        ns_obj = self._bucket(ns_type).get(("", name))
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        for other in self.registry.all():
            if other.namespaced and any(ns == name for ns, _ in self._bucket(other)):
                return
        self._commit(ns_type, "DELETED", copy.deepcopy(ns_obj), ns_obj)

    def _after_removal(self, rtype: ResourceType, removed: dict, *, orphan: bool = False) -> None:
        """Garbage-collect dependents (ownerReferences) and finish a terminating namespace."""
        uid = removed["metadata"].get("uid")
        namespace = removed["metadata"].get("namespace", "")
        for other in self.registry.all():
            for (ns, _), obj in list(self._bucket(other).items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if orphan:
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    self._commit(other, "MODIFIED", new, obj)
                elif not rtype.namespaced or ns == namespace:
                    self._delete_locked(other, obj, False, None)
        if namespace:
            self._maybe_finish_namespace(namespace)

    def api_delete_collection(self, rtype: ResourceType, namespace: str | None, opts: WriteOptions, *,
                              label_selector: str | None = None, field_selector: str | None = None) -> WriteResult:
        items, _ = self.api_list(rtype, namespace, label_selector=label_selector, field_selector=field_selector)
        deleted = []
        with self._lock:
            for item in items:
                stored = self._get_stored(rtype, item["metadata"].get("namespace", ""), item["metadata"]["name"])
                if stored is not None:
                    deleted.append(self._delete_locked(rtype, stored, opts.dry_run, None).obj)
            rv = self._rv
        self._dispatch()
        return WriteResult({"apiVersion": rtype.api_version(opts.version), "kind": rtype.list_kind,
                            "metadata": {"resourceVersion": str(rv)}, "items": deleted}, 200)

    # ==================================================================================
    # watch support
    # ==================================================================================

    def snapshot(self, rtype: ResourceType) -> tuple[list[dict], int]:
        """All objects of a type (unfiltered, stored form) and the current resourceVersion."""
        with self._lock:
            items = sorted(self._bucket(rtype).values(), key=lambda o: int(o["metadata"]["resourceVersion"]))
            return [copy.deepcopy(o) for o in items], self._rv

    def events_after(self, rv: int, resource_key: str) -> tuple[list[HistoryEntry], int]:
        """History entries of one type newer than ``rv``; 410 Expired when ``rv`` was compacted away."""
        with self._lock:
            if rv < self._compacted_rv:
                raise ApiError(410, f"too old resource version: {rv} ({self._compacted_rv + 1})", reason="Expired")
            return [e for e in self._history if e.rv > rv and e.resource == resource_key], self._rv

    def wait_for_change(self, rv: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._rv > rv or self._closed, timeout=timeout)

    # ==================================================================================
    # Python API for tests and the simulated controller
    # ==================================================================================

    def _type(self, resource: str) -> ResourceType:
        return self.registry.lookup(resource)

    def get(self, resource: str, namespace: str | None, name: str) -> dict | None:
        """The stored object, or None. ``resource`` is a plural, kind or short name."""
        rtype = self._type(resource)
        with self._lock:
            obj = self._get_stored(rtype, namespace or "", name)
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        items, _ = self.api_list(self._type(resource), namespace, label_selector=label_selector,
                                 field_selector=field_selector)
        return items

    def create(self, obj: dict, *, manager: str = "sandbox") -> dict:
        """Create an object (validated like an HTTP create with fieldValidation=Strict)."""
        rtype = self.registry.for_object(obj)
        ns = (obj.get("metadata") or {}).get("namespace", "") if rtype.namespaced else ""
        version = obj["apiVersion"].rpartition("/")[2]
        return self.api_create(rtype, ns, obj, WriteOptions(manager=manager, field_validation="Strict",
                                                            version=version)).obj

    def update(self, obj: dict, *, manager: str = "sandbox") -> dict:
        """Replace an object; checks metadata.resourceVersion only if the caller set it."""
        rtype = self.registry.for_object(obj)
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace", "") if rtype.namespaced else ""
        body = copy.deepcopy(obj)
        if not meta.get("resourceVersion"):
            current = self.get(rtype.plural, ns, meta["name"])
            if current is None:
                raise not_found(rtype.plural, rtype.group, meta["name"])
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.api_replace(rtype, ns, meta["name"], body,
                                WriteOptions(manager=manager, field_validation="Strict")).obj

    def patch(self, resource: str, namespace: str | None, name: str, patch: dict, *, manager: str = "sandbox",
              subresource: str | None = None) -> dict:
        """JSON merge patch (e.g. adding a finalizer, as KServe's controller does)."""
        rtype = self._type(resource)
        return self.api_patch(rtype, namespace or "", name, MERGE_PATCH, patch,
                              WriteOptions(manager=manager, field_validation="Strict"), subresource).obj

    def update_status(self, resource: str, namespace: str | None, name: str, status: dict, *,
                      manager: str = "kserve-controller") -> dict:
        """Replace ``status`` through the status subresource (or the object, for kinds without one)."""
        rtype = self._type(resource)
        current = self.get(resource, namespace, name)
        if current is None:
            raise not_found(rtype.plural, rtype.group, name)
        current["status"] = copy.deepcopy(status)
        sub = "status" if rtype.status_subresource else None
        return self.api_replace(rtype, namespace or "", name, current,
                                WriteOptions(manager=manager, field_validation="Ignore"), sub).obj

    def delete(self, resource: str, namespace: str | None, name: str) -> dict | None:
        """Delete (or mark for deletion when finalizers remain); None if it did not exist."""
        rtype = self._type(resource)
        try:
            return self.api_delete(rtype, namespace or "", name, WriteOptions()).obj
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def remove_finalizer(self, resource: str, namespace: str | None, name: str, finalizer: str, *,
                         manager: str = "kserve-controller") -> dict | None:
        """Drop one finalizer; the object disappears if it was being deleted and none remain."""
        current = self.get(resource, namespace, name)
        if current is None:
            return None
        remaining = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
        return self.patch(resource, namespace, name, {"metadata": {
            "finalizers": remaining or None, "resourceVersion": current["metadata"]["resourceVersion"]}},
            manager=manager)

    def seed(self, objects: Iterable[dict], *, manager: str = "sandbox") -> list[dict]:
        """Create (or overwrite) objects in bulk, e.g. default ClusterServingRuntimes, nodes. The
        ``status`` of a kind with a status subresource (a Node's allocatable resources, a Pod's
        phase) is written through ``/status`` as the owning component would."""
        out = []
        for obj in objects:
            rtype = self.registry.for_object(obj)
            meta = obj.get("metadata") or {}
            ns = meta.get("namespace", "") if rtype.namespaced else ""
            if rtype.namespaced and not ns:
                obj = copy.deepcopy(obj)
                obj.setdefault("metadata", {})["namespace"] = ns = "default"
            if self.get(rtype.plural, ns, meta["name"]) is None:
                stored = self.create(obj, manager=manager)
            else:
                stored = self.update(_without(obj, "status") | {"metadata": _without(meta, "resourceVersion")},
                                     manager=manager)
            if obj.get("status") and rtype.status_subresource:
                stored = self.update_status(rtype.plural, ns or None, meta["name"], obj["status"], manager=manager)
            out.append(stored)
        return out

    def set_pod(self, pod: dict, *, manager: str = "kubelet") -> dict:
        """Create or overwrite a Pod including its status (the simulated kubelet's view)."""
        pod = copy.deepcopy(pod)
        pod.setdefault("apiVersion", "v1")
        pod.setdefault("kind", "Pod")
        meta = pod.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        current = self.get("pods", meta["namespace"], meta["name"])
        if current is None:
            status = pod.get("status")
            created = self.create(pod, manager=manager)
            if status is None:
                return created
            return self.update_status("pods", meta["namespace"], meta["name"], status, manager=manager)
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        rtype = self._type("pods")
        self.api_replace(rtype, meta["namespace"], meta["name"], _without(pod, "status"),
                         WriteOptions(manager=manager, field_validation="Ignore"))
        return self.update_status("pods", meta["namespace"], meta["name"], pod.get("status") or {}, manager=manager)

    def _event_stamp(self) -> int:
        with self._lock:  # strictly increasing, so two events of one object never share a name
            stamp = max(time.time_ns(), self._last_event_stamp + 1)
            self._last_event_stamp = stamp
        return stamp

    def add_event(self, involved: dict, reason: str, message: str, *, type: str = "Normal",  # noqa: A002
                  component: str = "kserve-controller") -> dict:
        """Record a core/v1 Event about ``involved`` (an object dict), aggregating repeats like the real recorder."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        ref = {
            "apiVersion": involved.get("apiVersion", ""),
            "kind": involved.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": namespace,
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        now = now_rfc3339()
        existing = [
            e for e in self.list("events", namespace, field_selector=f"involvedObject.uid={ref['uid']},reason={reason}")
            if e.get("message") == message and e["involvedObject"].get("name") == ref["name"]
        ]
        if existing:
            event = existing[0]
            event["count"] = int(event.get("count") or 1) + 1
            event["lastTimestamp"] = now
            return self.update(event, manager=component)
        return self.create({
            "apiVersion": "v1",
            "kind": "Event",
            # Named like the real event recorder: the object's name and the time in hex nanoseconds.
            "metadata": {"name": f"{ref['name']}.{self._event_stamp():x}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
            "reportingComponent": component,
        }, manager=component)

    # --- pod logs (``pods/log``) -------------------------------------------------------------

    def _log_container(self, pod: dict, container: str | None) -> str:
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        init_names = [c.get("name") for c in spec.get("initContainers") or []]
        name = pod["metadata"]["name"]
        if container:
            if container not in names and container not in init_names:
                raise bad_request(f"container {container} is not valid for pod {name}")
            return container
        if len(names) != 1:
            message = (f"a container name must be specified for pod {name}, choose one of: "
                       f"[{' '.join(str(n) for n in names)}]")
            if init_names:
                message += f" or one of the init containers: [{' '.join(str(n) for n in init_names)}]"
            raise bad_request(message)
        return str(names[0])

    def set_pod_log(self, namespace: str, pod: str, text: str, *, container: str | None = None,
                    append: bool = False, run: int | None = None) -> None:
        """Set (or append to) what ``GET pods/<pod>/log`` returns for a container. ``run``
        numbers the container's instance: a new number keeps the log so far as the previous
        instance's (``?previous=true``), as the kubelet does after a restart."""
        with self._lock:
            stored = self._require(self._type("pods"), namespace, pod)
            key = (namespace, pod, self._log_container(stored, container))
            if run is not None:
                last = self._log_runs.get(key)
                if last is not None and last != run and key in self._logs:
                    self._previous_logs[key] = self._logs[key]
                self._log_runs[key] = run
            self._logs[key] = (self._logs.get(key, "") if append else "") + text

    def api_pod_log(self, namespace: str, pod: str, *, container: str | None = None,
                    tail_lines: int | None = None, previous: bool = False, limit_bytes: int | None = None) -> str:
        with self._lock:
            stored = self._require(self._type("pods"), namespace, pod)
            key = (namespace, pod, self._log_container(stored, container))
            if previous:
                if key not in self._previous_logs:
                    raise bad_request(f'previous terminated container "{key[2]}" in pod "{pod}" not found')
                text = self._previous_logs[key]
            else:
                text = self._logs.get(key, "")
        if tail_lines is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail_lines:]) if tail_lines > 0 else ""
        if limit_bytes is not None and limit_bytes > 0:
            text = text.encode()[:limit_bytes].decode("utf-8", errors="ignore")
        return text

    def dump(self) -> str:
        """All stored objects as JSON (debugging aid for failing tests)."""
        with self._lock:
            return json.dumps({k: list(v.values()) for k, v in self._objects.items()}, indent=1, sort_keys=True)
