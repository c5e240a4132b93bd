"""Validating and normalising Kubernetes API server audit events (pure: no Django imports).

The API server's audit webhook backend POSTs an ``audit.k8s.io/v1`` ``EventList`` (up to
``--audit-webhook-batch-max-size`` events, 400 by default) and retries the whole batch on
any failure, so events are de-duplicated on ``auditID`` + ``stage``. Request and response
objects are never kept: they may hold Secrets.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from audit.cloudevents import MalformedEvent, parse_time
from audit.jsonlimits import nesting_within

API_VERSION = "audit.k8s.io/v1"
STAGES = {"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"}
MAX_FIELD = 512


class MalformedEventList(ValueError):
    """The body is not an audit EventList; the message says why."""


@dataclass(frozen=True)
class NormalisedEvent:
    """The fields of an ``audit.models.AuditEvent`` built from one Kubernetes audit event."""

    external_id: str
    occurred_at: object
    actor_id: str
    actor_name: str
    action: str
    target_type: str
    target_id: str
    target_repr: str
    namespace: str
    outcome: str
    source_ip: str | None
    user_agent: str
    request_id: str
    details: dict


def parse_event_list(body: bytes, *, max_depth: int = 100) -> list[dict]:
    """The items of an EventList, each checked for what normalising needs. Arrays and objects
    nested deeper than ``max_depth`` are refused before parsing (no parsing recursion can fail)."""
    if not nesting_within(body, max_depth):
        raise MalformedEventList(f"the body nests arrays or objects more than {max_depth} levels deep")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEventList("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise MalformedEventList("body must be a JSON object (an audit.k8s.io/v1 EventList)")
    if document.get("kind") != "EventList":
        raise MalformedEventList(f"kind must be EventList, got {document.get('kind')!r}")
    if document.get("apiVersion") != API_VERSION:
        raise MalformedEventList(f"apiVersion must be {API_VERSION}, got {document.get('apiVersion')!r}")
    items = document.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise MalformedEventList("items must be a list")
    for index, item in enumerate(items):
        problem = _problem(item)
        if problem:
            raise MalformedEventList(f"items[{index}]: {problem}")
    return items


def _problem(item) -> str:
    if not isinstance(item, dict):
        return "must be an object"
    audit_id = item.get("auditID")
    if not isinstance(audit_id, str) or not audit_id or len(audit_id) > 128:
        return "auditID is missing or invalid"
    if item.get("stage") not in STAGES:
        return f"stage must be one of {sorted(STAGES)}"
    if not isinstance(item.get("verb"), str) or not item["verb"]:
        return "verb is missing"
    for name in ("user", "objectRef", "responseStatus", "annotations", "impersonatedUser"):
        if item.get(name) is not None and not isinstance(item[name], dict):
            return f"{name} must be an object"
    if item.get("sourceIPs") is not None and not isinstance(item["sourceIPs"], list):
        return "sourceIPs must be a list"
    try:
        if parse_time(item.get("stageTimestamp"), what="stageTimestamp") is None and parse_time(
            item.get("requestReceivedTimestamp"), what="requestReceivedTimestamp"
        ) is None:
            return "stageTimestamp or requestReceivedTimestamp is required"
    except MalformedEvent as exc:
        return str(exc)
    return ""


def _ip(value) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def _outcome(code: int | None, decision: str) -> str:
    if decision == "forbid" or code in (401, 403):
        return "denied"
    if code is None or code < 400:
        return "success"
    if code >= 500:
        return "error"
    return "failure"


def _user(value: dict | None) -> dict:
    value = value or {}
    out = {"username": str(value.get("username", ""))}
    if value.get("uid"):
        out["uid"] = str(value["uid"])
    if value.get("groups"):
        out["groups"] = [str(g) for g in value["groups"]][:50]
    return out


def normalise(item: dict) -> NormalisedEvent:
    """One validated item of ``parse_event_list`` as audit event fields."""
    stage = item["stage"]
    verb = item["verb"]
    user = _user(item.get("user"))
    impersonated = _user(item["impersonatedUser"]) if item.get("impersonatedUser") else None
    ref = item.get("objectRef") or {}
    resource = str(ref.get("resource", ""))
    if ref.get("subresource"):
        resource = f"{resource}/{ref['subresource']}"
    namespace = str(ref.get("namespace", ""))
    name = str(ref.get("name", ""))
    status = item.get("responseStatus") or {}
    code = status.get("code") if isinstance(status.get("code"), int) else None
    annotations = {str(k): str(v) for k, v in (item.get("annotations") or {}).items()}
    source_ips = [str(ip) for ip in item.get("sourceIPs") or []]
    occurred = parse_time(item.get("stageTimestamp"), what="stageTimestamp") or parse_time(
        item.get("requestReceivedTimestamp"), what="requestReceivedTimestamp"
    )
    target_id = f"{namespace}/{name}" if namespace else name
    target_repr = f"{resource} {target_id}".strip() if resource else str(item.get("requestURI", ""))
    details = {
        "auditID": item["auditID"],
        "stage": stage,
        "level": str(item.get("level", "")),
        "verb": verb,
        "requestURI": str(item.get("requestURI", ""))[:2048],
        "user": user,
        "sourceIPs": source_ips,
        "objectRef": {str(k): v for k, v in ref.items() if isinstance(v, str | int)},
        "responseStatus": {k: status[k] for k in ("code", "status", "reason", "message") if k in status},
        "annotations": annotations,
        "requestReceivedTimestamp": item.get("requestReceivedTimestamp"),
        "stageTimestamp": item.get("stageTimestamp"),
    }
    if impersonated:
        details["impersonatedUser"] = impersonated
    return NormalisedEvent(
        external_id=f"{item['auditID']}:{stage}",
        occurred_at=occurred,
        actor_id=str(user.get("uid", ""))[:64],
        actor_name=user["username"][:256],  # the authenticated user, even when impersonating
        action=f"k8s.{verb}"[:64],
        target_type=f"k8s:{resource}"[:64] if resource else "k8s:nonresource",
        target_id=target_id[:255],
        target_repr=target_repr[:MAX_FIELD],
        namespace=namespace,
        outcome=_outcome(code, annotations.get("authorization.k8s.io/decision", "")),
        # The API server appends the immediate peer last; entries before it come from
        # X-Forwarded-For and are only as trustworthy as whoever set them.
        source_ip=_ip(source_ips[-1]) if source_ips else None,
        user_agent=str(item.get("userAgent", ""))[:MAX_FIELD],
        request_id=item["auditID"][:64],
        details=details,
    )
