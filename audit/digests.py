"""Canonical form and SHA-256 digest of an audit event (no Django imports: pure and fast).

The canonical form is JSON with sorted keys, no insignificant whitespace, timestamps as
ISO-8601 UTC with microseconds. It leaves out the row id (assigned by the database, so bulk
inserts can digest before saving) and ``received_at``; the order of events is protected by
the seals, which chain the ids and digests.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

CANONICAL_FIELDS = (
    "occurred_at",
    "source",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "project_id",
    "project_name",
    "outcome",
    "source_ip",
    "user_agent",
    "request_id",
    "details",
    "external_id",
)


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_event(event) -> dict:
    data = {name: getattr(event, name) for name in CANONICAL_FIELDS}
    data["occurred_at"] = _timestamp(data["occurred_at"])
    if data["project_id"] is not None:
        data["project_id"] = int(data["project_id"])
    return data


def canonical_bytes(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def event_digest(event) -> str:
    return hashlib.sha256(canonical_bytes(canonical_event(event))).hexdigest()


# Positions of the canonical fields in sorted key order (the order json.dumps(sort_keys=True) writes).
_SORTED = sorted(range(len(CANONICAL_FIELDS)), key=lambda i: CANONICAL_FIELDS[i])
_OCCURRED, _PROJECT_ID, _DETAILS, _SOURCE_IP = (CANONICAL_FIELDS.index(n) for n in
                                                 ("occurred_at", "project_id", "details", "source_ip"))
# The canonical text with one %s per field in sorted key order: {"action":%s,"actor_id":%s,...}
_TEMPLATE = "{" + ",".join(json.dumps(CANONICAL_FIELDS[i]).replace("%", "%%") + ":%s" for i in _SORTED) + "}"
_escape = json.encoder.encode_basestring  # the C encoder json.dumps(ensure_ascii=False) uses for strings
# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str) as one
# C encoder built once (json.dumps with arguments builds a JSONEncoder, and it a C encoder, per
# call). No circular check: the values come from json.loads or from the console's own dicts.
_c_encoder = json.encoder.c_make_encoder
_details_encoder = (_c_encoder(None, str, _escape, None, ":", ",", True, False, True) if _c_encoder
                    else None)


def _details_json(details) -> str:
    if _details_encoder is not None and isinstance(details, dict):
        return "".join(_details_encoder(details, 0))
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _general(value) -> str:
    """A value that is not text as written by the console: the general encoder decides."""
    return json.dumps(value, ensure_ascii=False, default=str)


def row_digest(values, *, canonical_time: bool = False) -> str:
    """The digest of an event given as a tuple of its ``CANONICAL_FIELDS`` values, as the
    database returns them (``details`` as JSON text or a dict; ``source_ip`` as text or an
    address object): the same bytes as ``event_digest`` (tested), written into one template in
    sorted key order instead of through a dict and a sorting encoder — verification's hot loop.
    ``canonical_time``: ``occurred_at`` is already the canonical text (verification asks the
    database for it)."""
    values = list(values)
    if not canonical_time:
        moment = values[_OCCURRED]
        if moment.tzinfo is None:
            raise ValueError("audit timestamps must be timezone-aware")
        if moment.utcoffset():
            moment = moment.astimezone(UTC)
        values[_OCCURRED] = moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    details = values[_DETAILS]
    if isinstance(details, str | bytes):
        details = json.loads(details)
    values[_DETAILS] = _details_json(details)
    project_id = values[_PROJECT_ID]
    if project_id is not None:
        values[_PROJECT_ID] = str(int(project_id))
    ip = values[_SOURCE_IP]
    if ip is not None and ip.__class__ is not str:
        values[_SOURCE_IP] = str(ip)
    encoded = []
    for i in _SORTED:
        value = values[i]
        if i == _DETAILS or i == _PROJECT_ID and value is not None:
            encoded.append(value)
        elif value.__class__ is str:
            encoded.append(_escape(value))
        elif value is None:
            encoded.append("null")
        elif isinstance(value, str):
            encoded.append(_escape(value))
        else:  # not a text column as written by the console
            encoded.append(_general(value))
    return hashlib.sha256((_TEMPLATE % tuple(encoded)).encode()).hexdigest()
