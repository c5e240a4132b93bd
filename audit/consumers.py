"""The I/O audit: one audit event per inference call, from the paired payload-logger events.

Listed in ``settings.INFERENCE_EVENT_CONSUMERS``. It keeps who called (the
``X-Console-Principal`` metadata header the console's ext_authz sets), which endpoint and
model version, when, how long it took, and the SHA-256 digests and sizes of request and
response. Bodies themselves are kept only for projects that keep payload bodies, each cut
to the project's ``payload_body_limit``.
"""

from __future__ import annotations

import base64
import hashlib

from django.contrib.auth import get_user_model

from audit import services as audit
from audit.directory import ProjectRef, get_directory
from audit.inference import OK, RESPONSE_ONLY, InferencePair
from audit.models import AuditEvent

ACTION = "infer.request"


def _body_record(body: bytes | None, limit: int) -> dict:
    if body is None:
        return {}
    kept = body[:limit]
    try:
        body.decode("utf-8")
        # The cut may fall inside a multi-byte character: drop that partial tail only.
        text = {"text": kept.decode("utf-8", errors="ignore")}
    except UnicodeDecodeError:
        text = {"base64": base64.b64encode(kept).decode("ascii")}
    return {**text, "truncated": len(body) > limit}


def _digest(body: bytes | None) -> dict | None:
    if body is None:
        return None
    return {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


def _external_id(pair: InferencePair) -> str:
    key = f"kserve:{pair.project_id}:{pair.event_id}"
    return key if len(key) <= 200 else f"kserve:{pair.project_id}:sha256:{hashlib.sha256(pair.event_id.encode()).hexdigest()}"


def record_inference_io(pairs: list[InferencePair]) -> None:
    """Append one ``infer.request`` event per pair (re-dispatches are skipped by external id)."""
    projects = get_directory().projects_by_id({pair.project_id for pair in pairs})
    principals = {pair.principal for pair in pairs if pair.principal}
    user_ids = dict(
        get_user_model().objects.filter(username__in=principals).values_list("username", "pk")
    ) if principals else {}
    events = []
    for pair in pairs:
        # A project deleted meanwhile (or none known: no directory) keeps no bodies.
        project = projects.get(pair.project_id) or ProjectRef(pk=pair.project_id, name="", namespace=pair.namespace)
        details = {
            "event_id": pair.event_id,
            "inference_service": pair.inference_service,
            "namespace": pair.namespace,
            "component": pair.component,
            "model_version": pair.model_version,
            "status": pair.status,
            "request_time": pair.request_time.isoformat() if pair.request_time else None,
            "response_time": pair.response_time.isoformat() if pair.response_time else None,
            "latency_ms": round(pair.latency_ms, 3) if pair.latency_ms is not None else None,
            "content_type": pair.content_type,
            "request": _digest(pair.request_body if pair.status != RESPONSE_ONLY else None),
            "response": _digest(pair.response_body),
        }
        if project.keep_payload_bodies:
            limit = int(project.payload_body_limit)
            details["bodies"] = {
                "request": _body_record(pair.request_body if pair.status != RESPONSE_ONLY else None, limit),
                "response": _body_record(pair.response_body, limit),
            }
        events.append(AuditEvent(
            occurred_at=pair.request_time or pair.response_time,
            source=AuditEvent.Source.INFERENCE,
            actor_id=str(user_ids.get(pair.principal, "")),
            actor_name=pair.principal[:256],
            action=ACTION,
            target_type="endpoint" if pair.endpoint_id else "inferenceservice",
            target_id=str(pair.endpoint_id) if pair.endpoint_id else f"{pair.namespace}/{pair.inference_service}"[:255],
            target_repr=f"{pair.namespace}/{pair.inference_service}"[:512],
            project_id=pair.project_id,
            project_name=project.name,
            outcome=AuditEvent.Outcome.SUCCESS if pair.status in (OK, RESPONSE_ONLY) else AuditEvent.Outcome.ERROR,
            request_id=pair.event_id[:64],
            details=details,
            external_id=_external_id(pair),
        ))
    audit.record_many(events)
