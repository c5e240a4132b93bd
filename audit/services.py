"""Writing the audit trail. Every service that changes something calls ``record`` inside its
own transaction, so a change and its event commit together or not at all."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from audit import digests
from audit.models import AuditEvent
from console.middleware import current_request_context

SUCCESS = AuditEvent.Outcome.SUCCESS
FAILURE = AuditEvent.Outcome.FAILURE
DENIED = AuditEvent.Outcome.DENIED
ERROR = AuditEvent.Outcome.ERROR


def _json_safe(details: dict | None) -> dict:
    # Stored exactly as it will read back, so the digest computed now verifies later.
    return json.loads(json.dumps(details or {}, default=str))


def _target_fields(target: Any) -> tuple[str, str, str]:
    if isinstance(target, models.Model):
        return target._meta.model_name, str(target.pk), str(target)[:512]
    return "", "", ""


def record(
    *,
    action: str,
    actor: Any = None,
    actor_name: str | None = None,
    target: Any = None,
    target_type: str | None = None,
    target_id: str | None = None,
    target_repr: str | None = None,
    project: Any = None,
    outcome: str = SUCCESS,
    source: str = AuditEvent.Source.CONSOLE,
    details: dict | None = None,
    occurred_at: datetime | None = None,
    external_id: str = "",
    source_ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Append one event. ``actor``, ``target`` and ``project`` may be model instances; their
    ids and names are copied so the row survives their deletion. Request id, client address
    and user agent default to the current request's (``console.middleware``)."""
    context = current_request_context()
    default_type, default_id, default_repr = _target_fields(target)
    if project is None and isinstance(target, models.Model) and hasattr(target, "project_id"):
        project = target.project
    event = AuditEvent(
        occurred_at=occurred_at or timezone.now(),
        source=source,
        actor_id=str(actor.pk) if actor is not None and getattr(actor, "pk", None) is not None else "",
        actor_name=(actor_name if actor_name is not None else (actor.get_username() if actor is not None else ""))[:256],
        action=action,
        target_type=target_type if target_type is not None else default_type,
        target_id=target_id if target_id is not None else default_id,
        target_repr=(target_repr if target_repr is not None else default_repr)[:512],
        project_id=project.pk if project is not None else None,
        project_name=str(getattr(project, "name", "")) if project is not None else "",
        outcome=outcome,
        source_ip=source_ip if source_ip is not None else context.client_ip,
        user_agent=(user_agent if user_agent is not None else context.user_agent)[:512],
        request_id=request_id if request_id is not None else context.request_id,
        details=_json_safe(details),
        external_id=external_id,
    )
    event.save()
    return event


# Ids per existence query: with a few hundred ids PostgreSQL estimates that scanning the table
# beats probing the partial unique index hundreds of times and the query grows with the trail
# (157 ms at 1M events for 400 ids); with 100 it keeps the index plan (< 1 ms).
EXISTENCE_CHUNK = 100
_COPY_COLUMNS = ("occurred_at", "received_at", "source", "actor_id", "actor_name", "action", "target_type",
                 "target_id", "target_repr", "project_id", "project_name", "outcome", "source_ip", "user_agent",
                 "request_id", "details", "external_id", "digest")


def _existing_external_ids(events: list[AuditEvent]) -> set[tuple[str, str]]:
    by_source: dict[str, list[str]] = {}
    for event in events:
        if event.external_id:
            by_source.setdefault(event.source, []).append(event.external_id)
    existing: set[tuple[str, str]] = set()
    for source, ids in by_source.items():
        for start in range(0, len(ids), EXISTENCE_CHUNK):
            # The exclude repeats the partial index's predicate, so the planner may use it.
            existing.update(
                AuditEvent.objects.filter(source=source, external_id__in=ids[start:start + EXISTENCE_CHUNK])
                .exclude(external_id="").values_list("source", "external_id")
            )
    return existing


def _copy(events: list[AuditEvent]) -> None:
    """PostgreSQL COPY of new events (the bulk path's fast lane; the caller has checked their
    external ids). Raises IntegrityError if a concurrent worker stored one meanwhile."""
    now = timezone.now()
    # The driver's own COPY: its errors made Django's (a duplicate is an IntegrityError).
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {AuditEvent._meta.db_table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
        for e in events:
            copy.write_row((e.occurred_at, e.received_at or now, e.source, e.actor_id, e.actor_name, e.action,
                            e.target_type, e.target_id, e.target_repr, e.project_id, e.project_name, e.outcome,
                            e.source_ip, e.user_agent, e.request_id, json.dumps(e.details), e.external_id,
                            e.digest))


def record_many(events: list[AuditEvent], *, json_native: bool = False) -> int:
    """Bulk-append events built by ingest (unsaved ``AuditEvent`` instances), skipping those
    whose (source, external_id) is already stored. Computes each digest first, exactly as
    ``AuditEvent.save`` does (``json_native``: the details are already plain JSON values, as
    parsed from a request body, so the round trip that normalises them is skipped). On
    PostgreSQL one COPY of them all; only when the unique (source, external id) index refuses
    one, one existence query per 100 ids and a COPY of the new ones. Elsewhere the existence
    queries and a multi-row INSERT. Returns how many were new."""
    if not events:
        return 0
    fields = digests.CANONICAL_FIELDS
    for event in events:
        if not json_native:
            event.details = _json_safe(event.details)
        # The same bytes as AuditEvent.compute_digest (tests/audit/test_digests.py), written
        # field by field: the bulk path's share of the per-event cost.
        event.digest = digests.row_digest([getattr(event, name) for name in fields])
    if connection.vendor == "postgresql":
        # New events are the rule (a redelivered CloudEvent or Kubernetes event is rare): COPY
        # them all at once, and only when the unique index refuses one, find which are stored.
        try:
            with transaction.atomic():
                _copy(events)
            return len(events)
        except IntegrityError:
            pass
    existing = _existing_external_ids(events)
    new = [e for e in events if not e.external_id or (e.source, e.external_id) not in existing]
    if connection.vendor == "postgresql" and new:
        try:
            with transaction.atomic():
                _copy(new)
            return len(new)
        except IntegrityError:
            pass  # a concurrent worker stored one of them: fall back to the conflict-skipping insert
    # A concurrent worker may insert the same external id meanwhile: the unique constraint
    # then skips it (ON CONFLICT DO NOTHING / INSERT OR IGNORE).
    AuditEvent.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
    return len(new)


def record_verification(*, actor, report, actor_name: str | None = None) -> AuditEvent:
    """Audit one integrity verification and its result (who ran it, what it found)."""
    summary = report.summary()
    return record(
        action="audit.verify",
        actor=actor,
        actor_name=actor_name,
        target_type="audittrail",
        target_id="",
        target_repr="audit trail",
        outcome=SUCCESS if report.ok else FAILURE,
        details={key: summary[key] for key in
                 ("ok", "seals", "events", "archived_events", "unsealed", "problem_count", "first_problem")},
    )


def record_export(*, actor, fmt: str, filters: dict) -> AuditEvent:
    """Audit an export of the trail (who exported what) before its rows are streamed."""
    return record(action="audit.export", actor=actor, target_type="audittrail", target_id="",
                  target_repr="audit trail", details={"format": fmt, "filters": filters})
