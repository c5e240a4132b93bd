"""A fake Kubernetes API server on 127.0.0.1 that the unmodified ``kubernetes`` client and kubectl accept.

Use from Python::

    server = FakeApiServer(crds=["…/serving.kserve.io_inferenceservices.yaml"]).start()
    server.url                 # http://127.0.0.1:<port>
    server.store               # thread-safe object store (see store.py)
    server.faults.fail_next(2, status=503)
    server.requests(verb="patch", resource="inferenceservices")
    server.stop()

or as a process::

    python -m endpoints.sandbox.apiserver --port 8001 --crd crds/isvc.yaml --kubeconfig-out kubeconfig

This module is pure standard library + PyYAML (no Django); see docs/fake-apiserver.md for what
is and is not implemented.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import re
import select
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from . import discovery, protobuf
from .crdgen import builtin_crds
from .errors import ApiError, bad_request
from .faults import FaultInjector
from .resources import CRD_KEY, Registry, ResourceType, builtin_types, crd_type, types_from_crd
from .schema import load_yaml_documents, loads_json_with_duplicates, yaml_duplicate_keys
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, Store, WriteOptions, WriteResult

log = logging.getLogger(__name__)

_PATCH_TYPES = {APPLY_PATCH, "application/apply-patch+json", MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH}
_MAX_WATCH_SECONDS = 1800


@dataclass
class RequestRecord:
    """One served request, in RBAC terms (verb/group/resource/subresource/namespace/name)."""

    verb: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str
    name: str
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    status: int = 0
    user_agent: str = ""
    field_manager: str = ""
    content_type: str = ""
    dry_run: bool = False
    fault: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Route:
    """What a URL addresses."""

    kind: str  # "resource" | "nonresource"
    handler: str = ""
    rtype: ResourceType | None = None
    group: str = ""
    version: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    extra: str = ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, api: FakeApiServer):
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class _Dropped(Exception):
    """Raised to abandon a request without answering (fault injection)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms per request.
    disable_nagle_algorithm = True
    server: _HTTPServer
    server_version = "inference-console-sandbox"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - " + format, self.address_string(), *args)

    # Every method goes through one dispatcher.
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # --- plumbing ----------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _log(self, code: int) -> None:
        """Record the request before the client can see the answer, so tests never race the log."""
        if not self._logged:
            self._logged = True
            self._record.status = code
            self.server.api.log_request(self._record)

    def _send_json(self, code: int, payload: Any, warnings: Iterable[str] = (), extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._log(code)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for warning in warnings:
            self.send_header("Warning", f'299 - "{warning.replace(chr(34), chr(92) + chr(34))}"')
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err: ApiError) -> None:
        extra = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else None
        self._send_json(err.code, err.to_status(), extra=extra)

    def _client_gone(self) -> bool:
        return _peer_closed(self.connection)

    def _drop(self) -> None:
        """Close the socket without a response, as a crashed proxy or a reset connection would."""
        self.close_connection = True
        self._log(0)
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped

    # --- main entry ----------------------------------------------------------------------
    def _handle(self) -> None:
        api = self.server.api
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        dry_run_values = parse_qs(split.query).get("dryRun", [])
        body = self._read_body()
        route = api.route(split.path)
        verb = api.rbac_verb(self.command, route, query)
        self._record = RequestRecord(
            verb=verb, group=route.group, version=route.version,
            resource=route.rtype.plural if route.rtype else "", subresource=route.subresource,
            namespace=route.namespace, name=route.name, method=self.command, path=split.path, query=query,
            user_agent=self.headers.get("User-Agent", ""), field_manager=query.get("fieldManager", ""),
            content_type=self.headers.get("Content-Type", ""), dry_run=bool(dry_run_values),
        )
        self._logged = False
        try:
            if api.token and self.headers.get("Authorization", "") != f"Bearer {api.token}":
                raise ApiError(401, "Unauthorized")
            api.faults.wait_if_paused(verb, split.path)
            decision = api.faults.decide(verb, split.path)
            if decision.delay:
                time.sleep(decision.delay)
            if decision.drop:
                self._record.fault = "drop"
                self._drop()
            if decision.error is not None:
                self._record.fault = f"fail:{decision.error.code}"
                raise decision.error
            self._dispatch(route, verb, query, dry_run_values, body)
        except _Dropped:
            pass
        except ApiError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - any bug must still produce an API-shaped 500
            log.exception("fake apiserver internal error")
            self._send_error(ApiError(500, f"Internal error occurred: {exc}"))
        finally:
            self._log(self._record.status)

    def _dispatch(self, route: _Route, verb: str, query: dict[str, str], dry_run: list[str], body: bytes) -> None:
        api = self.server.api
        if route.kind == "nonresource":
            self._nonresource(route)
            return
        rtype = route.rtype
        assert rtype is not None
        accept = _Accept(self.headers.get("Accept", ""))
        if rtype.key == CRD_KEY:
            self._crds(rtype, route, verb, query, accept)
            return
        if not accept.json_ok and not accept.table_version:
            raise ApiError(406, "only the following media types are accepted: application/json, "
                           "application/json;as=Table;v=v1;g=meta.k8s.io")
        for value in dry_run:
            if value != "All":
                raise ApiError(400, f'dryRun: Unsupported value: "{value}": supported values: "All"')
        validation = query.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation: Unsupported value: "{validation}": supported values: '
                              '"Ignore", "Strict", "Warn"')
        manager = query.get("fieldManager") or self.headers.get("User-Agent", "").split("/")[0] or "unknown"
        opts = WriteOptions(
            manager=manager, field_validation=validation, dry_run=bool(dry_run),
            force=query.get("force", "").lower() in ("true", "1"), version=route.version,
            explicit_manager=bool(query.get("fieldManager")),
        )
        store = api.store
        ns, name, sub = route.namespace, route.name, route.subresource or None
        if verb == "watch":
            self._watch(rtype, route, query, accept)
            return
        if verb == "list":
            items, rv = store.api_list(rtype, ns or None, label_selector=query.get("labelSelector"),
                                       field_selector=query.get("fieldSelector"), version=route.version)
            page, token = _paginate(items, query)
            if accept.table_version:
                self._send_json(200, discovery.table(rtype, route.version, page, str(rv),
                                                     include_object=query.get("includeObject", "Metadata"),
                                                     table_version=accept.table_version))
                return
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if token:
                meta["continue"] = token
            self._send_json(200, {"apiVersion": rtype.api_version(route.version), "kind": rtype.list_kind,
                                  "metadata": meta, "items": page})
            return
        if verb == "get" and rtype.plural == "pods" and sub == "log":
            tail = query.get("tailLines")
            limit = query.get("limitBytes")
            text = store.api_pod_log(ns, name, container=query.get("container") or None,
                                     tail_lines=int(tail) if tail and tail.lstrip("-").isdigit() else None,
                                     previous=(query.get("previous") or "").lower() in ("true", "1"),
                                     limit_bytes=int(limit) if limit and limit.isdigit() else None)
            self._send_raw(200, text.encode(), "text/plain")
            return
        if verb == "get":
            obj = store.api_get(rtype, ns, name, sub, route.version)
            if accept.table_version:
                self._send_json(200, discovery.table(rtype, route.version, [obj], None,
                                                     include_object=query.get("includeObject", "Metadata"),
                                                     table_version=accept.table_version))
            else:
                self._send_json(200, obj)
            return
        if verb == "deletecollection":
            result = store.api_delete_collection(rtype, ns or None, opts, label_selector=query.get("labelSelector"),
                                                 field_selector=query.get("fieldSelector"))
            self._send_result(result)
            return
        if verb == "delete":
            options = _decode(body, "application/json") if body else {}
            options = options if isinstance(options, dict) else {}
            for value in options.get("dryRun") or []:
                if value != "All":
                    raise ApiError(400, f'dryRun: Unsupported value: "{value}": supported values: "All"')
            opts.dry_run = opts.dry_run or bool(options.get("dryRun"))
            propagation = options.get("propagationPolicy") or query.get("propagationPolicy")
            result = store.api_delete(rtype, ns, name, opts, options.get("preconditions"), propagation)
            self._send_result(result)
            return
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        payload = _decode(body, content_type)
        if validation != "Ignore":
            opts.decode_errors, opts.decode_warnings = _duplicate_keys(body, content_type)
        if verb == "create":
            self._send_result(store.api_create(rtype, ns, payload, opts, sub))
        elif verb == "update":
            self._send_result(store.api_replace(rtype, ns, name, payload, opts, sub))
        elif verb == "patch":
            if content_type not in _PATCH_TYPES:
                raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                               f"include: {', '.join(sorted(_PATCH_TYPES))}")
            if content_type == "application/apply-patch+json":
                content_type = APPLY_PATCH
            self._send_result(store.api_patch(rtype, ns, name, content_type, payload, opts, sub))
        else:
            raise ApiError(405, "the server does not allow this method on the requested resource")

    def _crds(self, rtype: ResourceType, route: _Route, verb: str, query: dict[str, str], accept: _Accept) -> None:
        """CustomResourceDefinitions: get and list of the ones the server was started with."""
        crds = self.server.api.crd_objects
        if verb == "get" and not route.subresource:
            obj = crds.get(route.name)
            if obj is None:
                raise ApiError(404, f'customresourcedefinitions.apiextensions.k8s.io "{route.name}" not found',
                               name=route.name, group=rtype.group, kind="customresourcedefinitions")
            items = [obj]
        elif verb == "list":
            items = [crds[name] for name in sorted(crds)]
        else:
            raise ApiError(405, "the sandbox serves the CustomResourceDefinitions it was started with (built-in, "
                           "--crd or the release profile's) and cannot change or watch them")
        if accept.table_version:
            self._send_json(200, discovery.table(rtype, route.version, items, "1",
                                                 include_object=query.get("includeObject", "Metadata"),
                                                 table_version=accept.table_version))
        elif verb == "get":
            self._send_json(200, items[0])
        else:
            self._send_json(200, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList",
                                  "metadata": {"resourceVersion": "1"}, "items": items})

    def _send_result(self, result: WriteResult) -> None:
        self._send_json(result.code, result.obj, warnings=result.warnings)

    # --- non-resource endpoints ----------------------------------------------------------
    def _nonresource(self, route: _Route) -> None:
        api = self.server.api
        accept = _Accept(self.headers.get("Accept", ""))
        if route.handler in ("api", "apis", "apigroup", "resourcelist") and not accept.json_ok:
            # Aggregated discovery only: the client must fall back to the legacy documents.
            raise ApiError(406, "aggregated discovery is not supported by this server; accept application/json")
        if route.handler == "api":
            self._send_json(200, discovery.api_versions(f"{api.host}:{api.port}"))
        elif route.handler == "apis":
            self._send_json(200, discovery.api_group_list(api.registry))
        elif route.handler == "apigroup":
            doc = discovery.api_group(api.registry, route.group)
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            self._send_json(200, doc)
        elif route.handler == "resourcelist":
            doc = discovery.api_resource_list(api.registry, route.group, route.version)
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            self._send_json(200, doc)
        elif route.handler == "version":
            self._send_json(200, discovery.SERVER_VERSION)
        elif route.handler == "openapi-index":
            self._send_json(200, api.openapi_index())
        elif route.handler == "openapi-v2":
            if not accept.json_ok:
                # The real server also serves protobuf here. kubectl asks for protobuf only and, on 406,
                # goes on without the v2 document (client-side apply/diff of custom resources).
                raise ApiError(406, "only the following media types are accepted: application/json")
            doc, etag = api.openapi_v2()
            self._send_raw(200, doc, extra={"Etag": f'"{etag}"', "Vary": "Accept"})
        elif route.handler == "openapi-doc":
            doc = api.openapi_document(route.extra)
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            # Hashed URLs are immutable, as on the real server; kubectl's HTTP cache can keep them.
            self._send_raw(200, doc, extra={"Cache-Control": "public, immutable", "Etag": f'"{api.openapi_hash(route.extra)}"'})
        elif route.handler == "health":
            self._send_raw(200, b"ok", "text/plain; charset=utf-8")
        else:
            raise ApiError(404, "the server could not find the requested resource")

    def _send_raw(self, code: int, payload: bytes, content_type: str = "application/json",
                  extra: dict[str, str] | None = None) -> None:
        self._log(code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    # --- watch ---------------------------------------------------------------------------
    def _watch(self, rtype: ResourceType, route: _Route, query: dict[str, str], accept: _Accept) -> None:
        api = self.server.api
        store = api.store
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        for req in fields:
            rtype.field_value({}, req.field)
        rv_param = query.get("resourceVersion", "")
        send_initial = query.get("sendInitialEvents", "").lower() == "true"
        if rv_param not in ("", "0") and not rv_param.isdigit():
            raise bad_request(f'resourceVersion: Invalid value: "{rv_param}": must be an integer')
        timeout = min(float(query.get("timeoutSeconds") or _MAX_WATCH_SECONDS), _MAX_WATCH_SECONDS)
        bookmarks = query.get("allowWatchBookmarks", "").lower() == "true"
        namespace = route.namespace

        def matches(obj: dict | None) -> bool:
            if obj is None:
                return False
            meta = obj.get("metadata") or {}
            if namespace and meta.get("namespace") != namespace:
                return False
            return labels_match(labels, meta.get("labels")) and fields_match(fields, obj, rtype.field_value)

        self._log(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.close_connection = True

        def emit(event_type: str, obj: dict) -> None:
            if event_type not in ("ERROR", "BOOKMARK"):
                obj = dict(obj, apiVersion=rtype.api_version(route.version))
                if accept.table_version:
                    obj = discovery.table(rtype, route.version, [obj], None,
                                          include_object=query.get("includeObject", "Metadata"),
                                          table_version=accept.table_version)
            line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        def bookmark(rv: int, initial_end: bool = False) -> None:
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            emit("BOOKMARK", {"kind": rtype.kind, "apiVersion": rtype.api_version(route.version), "metadata": meta})

        try:
            if rv_param in ("", "0") or send_initial:
                items, cursor = store.snapshot(rtype)
                for obj in items:
                    if matches(obj):
                        emit("ADDED", obj)
                if send_initial:
                    bookmark(cursor, initial_end=True)
            else:
                cursor = int(rv_param)
            deadline = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            while not api.stopping and not self._client_gone():
                try:
                    entries, current = store.events_after(cursor, rtype.key)
                except ApiError as err:
                    emit("ERROR", err.to_status())
                    break
                for entry in entries:
                    now_match, before_match = matches(entry.obj), matches(entry.prev)
                    if entry.type == "MODIFIED" and now_match and not before_match:
                        emit("ADDED", entry.obj)
                    elif entry.type == "MODIFIED" and before_match and not now_match:
                        emit("DELETED", entry.obj)
                    elif now_match:
                        emit(entry.type, entry.obj)
                cursor = max(cursor, current)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if bookmarks and time.monotonic() - last_bookmark >= api.bookmark_interval:
                    bookmark(cursor)
                    last_bookmark = time.monotonic()
                store.wait_for_change(cursor, min(remaining, api.bookmark_interval if bookmarks else 0.5, 0.5))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass


def _peer_closed(conn: socket.socket) -> bool:
    """True once the client has hung up (readable with nothing to read), so idle watches end."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Accept:
    """The parts of an ``Accept`` header the server cares about."""

    def __init__(self, header: str):
        self.json_ok = not header.strip()
        self.table_version = ""
        for part in header.split(","):
            pieces = [p.strip() for p in part.split(";")]
            media = pieces[0].lower()
            params = dict(p.split("=", 1) for p in pieces[1:] if "=" in p)
            if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and media == "application/json":
                self.table_version = self.table_version or params.get("v", "v1")
            elif media in ("application/json", "*/*", "application/*") and "as" not in params:
                self.json_ok = True


def _decode(body: bytes, content_type: str) -> Any:
    if content_type == "application/vnd.kubernetes.protobuf":
        return protobuf.decode(body)
    if content_type and ("protobuf" in content_type or "cbor" in content_type):
        raise ApiError(415, f'the body of the request was in an unknown format - accepted media types include: '
                       f'application/json, application/yaml (got "{content_type}")')
    if not body:
        raise bad_request("the body of the request was in an unknown format - empty body")
    try:
        return json.loads(body)
    except ValueError:
        if "yaml" not in content_type:
            raise bad_request("the body of the request was in an unknown format - invalid JSON") from None
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise bad_request(f"error decoding YAML: {exc}") from None


def _duplicate_keys(body: bytes, content_type: str) -> tuple[list[str], list[str]]:
    """Repeated keys in a write's body as (strict-decoding errors, warnings), worded per decoder:

    * JSON bodies (create, update, merge and strategic patches): ``duplicate field "metadata.name"``
      (sigs.k8s.io/json, full path), one error and one warning each;
    * a JSON patch: only keys repeated inside an operation count, ``json patch duplicate field "[1].path"``
      (the patch library itself keeps the last value of repeated keys in values silently);
    * YAML bodies of create/update: go-yaml's ``line 6: key "name" already set in map``, joined
      into one ``yaml: unmarshal errors:`` error, one warning per line;
    * apply bodies (JSON or YAML, both read as YAML): the same go-yaml lines; the store wraps the
      error as ``error strict decoding YAML: error converting YAML to JSON: …``.
    """
    if not body or content_type == "application/vnd.kubernetes.protobuf":
        return [], []
    apply_request = content_type in (APPLY_PATCH, "application/apply-patch+json")
    paths: list[str] | None = None
    if not apply_request:
        try:
            _, paths = loads_json_with_duplicates(body)
        except ValueError:
            if "yaml" not in content_type:
                return [], []
    if paths is None:
        lines = yaml_duplicate_keys(body)
        return (["yaml: unmarshal errors:\n" + "\n".join(f"  {line}" for line in lines)], lines) if lines else ([], [])
    if content_type == JSON_PATCH:
        paths = [f"json patch duplicate field {json.dumps(p)}" for p in paths if re.fullmatch(r"\[\d+\]\.[^.\[]+", p)]
    else:
        paths = [f"duplicate field {json.dumps(p)}" for p in paths]
    return paths, paths


def _paginate(items: list[dict], query: dict[str, str]) -> tuple[list[dict], str]:
    """``limit``/``continue``: a continue token is the offset into the (sorted) current list."""
    import base64

    start = 0
    if query.get("continue"):
        try:
            start = int(json.loads(base64.urlsafe_b64decode(query["continue"].encode()))["start"])
        except (ValueError, KeyError, TypeError):
            raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
    limit = int(query.get("limit") or 0)
    if limit <= 0:
        return items[start:], ""
    page = items[start:start + limit]
    if start + limit < len(items):
        token = base64.urlsafe_b64encode(json.dumps({"start": start + limit}).encode()).decode()
        return page, token
    return page, ""


class FakeApiServer:
    """The server object tests hold: lifecycle, store, faults, request log and kubeconfig."""

    def __init__(
        self,
        *,
        crds: Iterable[str | Path | dict] = (),
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        history_limit: int = 1000,
        bookmark_interval: float = 5.0,
        namespaces: Iterable[str] = ("default", "kube-system", "kube-public"),
    ):
        if not _is_loopback(host):
            raise ValueError(f"the fake API server only listens on loopback addresses, not {host!r}")
        self.host = host
        self._requested_port = port
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.registry = Registry(builtin_types())
        served = {c["metadata"]["name"]: c for c in builtin_crds()}
        for crd in _crd_documents(crds):
            self.registry.add(types_from_crd(crd))
            served[crd["metadata"]["name"]] = crd
        self.registry.add(crd_type())
        self.store = Store(self.registry, history_limit=history_limit, namespaces=namespaces)
        # The CRDs are readable like on a real cluster (what a client learns the schema from); kept
        # beside the store, read-only, so a 2 MB CRD costs nothing until someone asks for it.
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.crd_objects = {
            crd["metadata"]["name"]: {
                **{k: v for k, v in crd.items() if k not in ("metadata", "status")},
                "metadata": {**{k: v for k, v in crd["metadata"].items() if k in ("name", "labels", "annotations")},
                             "uid": str(uuid.uuid4()), "resourceVersion": "1", "generation": 1,
                             "creationTimestamp": started},
                "status": {"acceptedNames": crd["spec"]["names"],
                           "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
                           "conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                                           "message": "the initial names have been accepted",
                                           "lastTransitionTime": started}]},
            }
            for crd in served.values()
        }
        self.faults = FaultInjector()
        self.stopping = False
        self._requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._openapi_cache: dict[str, tuple[bytes, str]] = {}
        self._openapi_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeApiServer:
        self._httpd = _HTTPServer((self.host, self._requested_port), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-apiserver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self.stopping = True
        self.faults.stop()
        self.store.close()
        self._httpd.shutdown()
        with self._httpd.connections_lock:
            for conn in list(self._httpd.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeApiServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- request log -------------------------------------------------------------------
    def log_request(self, record: RequestRecord) -> None:
        with self._requests_lock:
            self._requests.append(record)

    def requests(self, **filters: Any) -> list[RequestRecord]:
        """Served requests, oldest first, filtered by equality on any RequestRecord field."""
        with self._requests_lock:
            records = list(self._requests)
        return [r for r in records if all(getattr(r, k) == v for k, v in filters.items())]

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    # --- kubeconfig --------------------------------------------------------------------
    def kubeconfig(self, *, context: str = "sandbox", namespace: str = "default") -> str:
        """A kubeconfig (YAML text) pointing kubectl or the kubernetes client at this server."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
            "current-context": context,
            "preferences": {},
        }
        return yaml.safe_dump(config, sort_keys=False)

    def write_kubeconfig(self, path: str | Path, **kwargs: Any) -> Path:
        target = Path(path)
        target.write_text(self.kubeconfig(**kwargs), encoding="utf-8")
        target.chmod(0o600)
        return target

    # --- routing -----------------------------------------------------------------------
    def route(self, path: str) -> _Route:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return _Route("nonresource", "root")
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return _Route("nonresource", "health")
        if head == "version" and len(parts) == 1:
            return _Route("nonresource", "version")
        if head == "openapi":
            if parts[1:] == ["v2"]:
                return _Route("nonresource", "openapi-v2")
            if parts[1:] == ["v3"]:
                return _Route("nonresource", "openapi-index")
            if len(parts) > 2 and parts[1] == "v3":
                return _Route("nonresource", "openapi-doc", extra="/".join(parts[2:]))
            return _Route("nonresource", "notfound")
        if head == "api":
            if len(parts) == 1:
                return _Route("nonresource", "api")
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _Route("nonresource", "apis")
            if len(parts) == 2:
                return _Route("nonresource", "apigroup", group=parts[1])
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return _Route("nonresource", "notfound")
        if not rest:
            return _Route("nonresource", "resourcelist", group=group, version=version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            # /namespaces/{ns}/{plural}[/{name}[/{sub}]] -- but /api/v1/namespaces/{name}/status is the
            # namespace's own subresource.
            candidate = self.registry.by_url(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
            elif rest[2] not in ("status", "finalize"):
                return _Route("nonresource", "notfound", group=group, version=version)
        plural = rest[0]
        rtype = self.registry.by_url(group, version, plural)
        if rtype is None:
            return _Route("nonresource", "notfound", group=group, version=version)
        return _Route("resource", rtype=rtype, group=group, version=version, namespace=namespace,
                      name=rest[1] if len(rest) > 1 else "", subresource="/".join(rest[2:]))

    @staticmethod
    def rbac_verb(method: str, route: _Route, query: dict[str, str]) -> str:
        if route.kind != "resource":
            return method.lower()
        collection = not route.name
        if method in ("GET", "HEAD"):
            if collection:
                return "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
            return "get"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "deletecollection" if collection else "delete",
        }.get(method, method.lower())

    # --- openapi -----------------------------------------------------------------------
    def _openapi_bytes(self, key: str) -> tuple[bytes, str] | None:
        with self._openapi_lock:
            if key not in self._openapi_cache:
                parts = key.split("/")
                if parts[0] == "api" and len(parts) == 2:
                    group, version = "", parts[1]
                elif parts[0] == "apis" and len(parts) == 3:
                    group, version = parts[1], parts[2]
                else:
                    return None
                doc = discovery.openapi_v3_document(self.registry, group, version)
                if doc is None:
                    return None
                serialized = json.dumps(doc, separators=(",", ":")).encode()
                self._openapi_cache[key] = (serialized, discovery.document_hash(serialized))
            return self._openapi_cache[key]

    def openapi_v2(self) -> tuple[bytes, str]:
        """The ``/openapi/v2`` document (JSON) and its hash, built once per server."""
        with self._openapi_lock:
            if "v2" not in self._openapi_cache:
                serialized = json.dumps(discovery.openapi_v2_document(self.registry), separators=(",", ":")).encode()
                self._openapi_cache["v2"] = (serialized, discovery.document_hash(serialized))
            return self._openapi_cache["v2"]

    def openapi_index(self) -> dict[str, Any]:
        hashes = {}
        for group, versions in self.registry.groups().items():
            for version in versions:
                key = f"apis/{group}/{version}" if group else f"api/{version}"
                cached = self._openapi_bytes(key)
                if cached:
                    hashes[key] = cached[1]
        return discovery.openapi_v3_index(self.registry, hashes)

    def openapi_hash(self, key: str) -> str:
        cached = self._openapi_bytes(key)
        return cached[1] if cached else ""

    def openapi_document(self, key: str) -> bytes | None:
        cached = self._openapi_bytes(key)
        return cached[0] if cached else None


def _crd_documents(crds: Iterable[str | Path | dict]) -> list[dict]:
    out = []
    for item in crds:
        docs = [item] if isinstance(item, dict) else load_yaml_documents(item)
        out.extend(d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m endpoints.sandbox.apiserver``: run the server until interrupted."""
    parser = argparse.ArgumentParser(description="Fake Kubernetes API server for the Inference Console sandbox.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--crd", action="append", default=[], metavar="PATH",
                        help="CustomResourceDefinition YAML to serve and validate against (repeatable)")
    parser.add_argument("--token", default=None, help="require this bearer token on every request")
    parser.add_argument("--kubeconfig-out", default=None, metavar="PATH", help="write a kubeconfig for this server")
    parser.add_argument("--history", type=int, default=1000, help="watch history length (events)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Handlers first: whoever waits for the "listening" line may signal us right after it.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = FakeApiServer(crds=args.crd, token=args.token, host=args.host, port=args.port,
                           history_limit=args.history).start()
    if args.kubeconfig_out:
        server.write_kubeconfig(args.kubeconfig_out)
    print(f"fake Kubernetes API server listening on {server.url}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
