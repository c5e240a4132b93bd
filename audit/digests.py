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


_KEYS = CANONICAL_FIELDS


def row_digest(values) -> str:
    """The digest of an event given as a tuple of its ``CANONICAL_FIELDS`` values, as the
    database returns them (``details`` as JSON text or a dict; ``source_ip`` as text or an
    address object): the same bytes as ``event_digest``, without building an object first."""
    data = dict(zip(_KEYS, values, strict=True))
    data["occurred_at"] = _timestamp(data["occurred_at"])
    if data["project_id"] is not None:
        data["project_id"] = int(data["project_id"])
    details = data["details"]
    if isinstance(details, str | bytes):
        data["details"] = json.loads(details)
    if data["source_ip"] is not None and not isinstance(data["source_ip"], str):
        data["source_ip"] = str(data["source_ip"])
    return hashlib.sha256(canonical_bytes(data)).hexdigest()
