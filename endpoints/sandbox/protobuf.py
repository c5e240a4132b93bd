"""Just enough Kubernetes protobuf decoding for kubectl's typed ``create`` commands.

kubectl sends built-in kinds created through typed clients (``kubectl create namespace``,
``kubectl create secret generic``, ``kubectl create configmap``, ``kubectl create serviceaccount``) as
``application/vnd.kubernetes.protobuf`` and does not fall back to JSON on 415. This module decodes
that envelope (``k8s\\x00`` + ``runtime.Unknown``) for Namespace, Secret, ConfigMap and ServiceAccount into the
JSON form the rest of the server works with. Field numbers follow the published
``k8s.io/api/core/v1`` and ``apimachinery`` ``generated.proto`` definitions. Any other kind is
refused with 415 (responses are always JSON, which every client accepts).
"""

from __future__ import annotations

import base64
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"

# field number -> (json name, type); a type is a scalar name or ("message"|"repeated", schema).
Schema = dict[int, tuple[str, Any]]

_OWNER_REFERENCE: Schema = {
    1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"), 5: ("apiVersion", "string"),
    6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_REFERENCE: Schema = {
    1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"), 4: ("uid", "string"),
    5: ("apiVersion", "string"), 6: ("resourceVersion", "string"), 7: ("fieldPath", "string"),
}
_OBJECT_META: Schema = {
    1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
    6: ("resourceVersion", "string"), 11: ("labels", "map_string"), 12: ("annotations", "map_string"),
    13: ("ownerReferences", ("repeated", _OWNER_REFERENCE)), 14: ("finalizers", "repeated_string"),
}
_KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", ("message", _OBJECT_META)),
                  2: ("spec", ("message", {1: ("finalizers", "repeated_string")}))},
    "Secret": {1: ("metadata", ("message", _OBJECT_META)), 2: ("data", "map_bytes"), 3: ("type", "string"),
               4: ("stringData", "map_string"), 5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", ("message", _OBJECT_META)), 2: ("data", "map_string"),
                  3: ("binaryData", "map_bytes"), 4: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", ("message", _OBJECT_META)),
                       2: ("secrets", ("repeated", _OBJECT_REFERENCE)),
                       3: ("imagePullSecrets", ("repeated", {1: ("name", "string")})),
                       4: ("automountServiceAccountToken", "bool")},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Split a protobuf message into (field number, varint or bytes) pairs."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, raw in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "string":
            if raw:
                out[name] = raw.decode()
        elif kind == "bool":
            out[name] = bool(raw)
        elif kind == "repeated_string":
            out.setdefault(name, []).append(raw.decode())
        elif kind in ("map_string", "map_bytes"):
            entry = dict(_fields(raw))
            key, value = entry.get(1, b"").decode(), entry.get(2, b"")
            out.setdefault(name, {})[key] = (
                base64.b64encode(value).decode() if kind == "map_bytes" else value.decode()
            )
        elif kind[0] == "message":
            out[name] = _message(raw, kind[1])
        elif kind[0] == "repeated":
            out.setdefault(name, []).append(_message(raw, kind[1]))
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as a JSON-style object; 415 for kinds this server cannot decode."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "the body of the request was in an unknown format - missing protobuf envelope")
    try:
        envelope = dict(_fields(body[len(MAGIC):]))
        type_meta = dict(_fields(envelope.get(1, b"")))
        api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
        schema = _KINDS.get(kind) if api_version == "v1" else None
        if schema is None:
            raise ApiError(415, f"the body of the request was in an unknown format - protobuf is only decoded for "
                           f"{', '.join(sorted(_KINDS))}; send {api_version} {kind} as application/json")
        obj = _message(envelope.get(2, b""), schema)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body of the request was in an unknown format - {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
