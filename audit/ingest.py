"""Ingest of external logs through Celery: store the raw batch, then parse, normalise,
de-duplicate and bulk-insert in a worker.

Receivers (``audit.views.ingest``) validate a delivery's shape, call ``batch_receive`` (one
row, committed before the 202) and leave the rest to ``process_ingest_batch_task``, which calls
``batch_process``. Processing is one transaction: either every event of the batch is stored
(and every pair it completes is dispatched) and the batch is marked done, or nothing is and
the batch is marked failed with its error, to be retried by the sweep
(``batch_retry_due``) or by hand (``batch_retry``). Nothing accepted is ever dropped.

KServe payload-logger events wait as ``InferenceEventPart`` rows until their partner arrives
(paired by project + CloudEvents id), then go to the consumers in
``settings.INFERENCE_EVENT_CONSUMERS`` (``audit.inference``); ``pairs_sweep`` completes pairs
whose halves were processed concurrently and dispatches requests whose response never came.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audit import cloudevents, k8s
from audit import services as audit
from audit.directory import get_directory
from audit.inference import OK, RESPONSE_ONLY, TIMEOUT, InferencePair, dispatch
from audit.models import AuditEvent, InferenceEventPart, IngestBatch
from console import bulk, metrics

logger = logging.getLogger(__name__)

SWEEP_CHUNK = 500
PENDING_REDELIVERY_AFTER = timedelta(minutes=2)


# --- receiving ------------------------------------------------------------------------------

def batch_receive(
    *,
    kind: str,
    body: bytes,
    content_type: str = "",
    headers: dict | None = None,
    project=None,
    cluster_name: str = "",
    submitted_by=None,
    source_ip: str | None = None,
    item_count: int = 0,
) -> IngestBatch:
    """Store one delivery durably and enqueue its processing after commit."""
    from audit.tasks import process_ingest_batch_task

    with transaction.atomic():
        batch = IngestBatch.objects.create(
            kind=kind,
            project_id=project.pk if project is not None else None,
            project_name=project.name if project is not None else "",
            cluster_name=cluster_name[:128],
            submitted_by_id=str(submitted_by.pk) if submitted_by is not None else "",
            submitted_by_name=submitted_by.get_username() if submitted_by is not None else "",
            source_ip=source_ip,
            content_type=content_type[:200],
            headers=headers or {},
            body=body,
            body_size=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
            item_count=item_count,
        )
        process_ingest_batch_task.delay_on_commit(batch_id=batch.pk)
    return batch


# --- processing -----------------------------------------------------------------------------

def _claim(batch_id: int) -> IngestBatch | None:
    qs = IngestBatch.objects.filter(pk=batch_id, status__in=[IngestBatch.Status.PENDING, IngestBatch.Status.FAILED])
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    return qs.first()


def batch_process(*, batch_id: int) -> IngestBatch | None:
    """Process one batch (idempotent: a done batch, or one another worker holds, is left alone).
    Returns the batch, or None when there was nothing to do. Failures are recorded on the
    batch, never raised."""
    try:
        with transaction.atomic():
            batch = _claim(batch_id)
            if batch is None:
                return None
            if batch.kind == IngestBatch.Kind.KUBERNETES:
                created, duplicates, keep_body = _process_kubernetes(batch)
            else:
                created, duplicates, keep_body = _process_kserve(batch)
            batch.status = IngestBatch.Status.DONE
            batch.processed_at = timezone.now()
            batch.attempts += 1
            batch.error = ""
            batch.next_attempt_at = None
            batch.created_count = created
            batch.duplicate_count = duplicates
            if not keep_body:
                batch.body = None
            batch.save()
        metrics.INGEST_PROCESSED.labels(batch.kind, "done").inc()
        metrics.INGEST_LAG.labels(batch.kind).observe((batch.processed_at - batch.received_at).total_seconds())
        return batch
    except Exception as exc:
        logger.exception("ingest batch %s failed", batch_id)
        failed = _mark_failed(batch_id, exc)
        if failed is not None:
            metrics.INGEST_PROCESSED.labels(failed.kind, "failed").inc()
        return failed


def _mark_failed(batch_id: int, exc: Exception) -> IngestBatch | None:
    with transaction.atomic():
        batch = IngestBatch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.status == IngestBatch.Status.DONE:
            return batch
        batch.status = IngestBatch.Status.FAILED
        batch.attempts += 1
        batch.error = f"{type(exc).__name__}: {exc}"[:4000]
        # Exponential backoff for the sweep: 1, 2, 4, ... minutes, at most an hour.
        batch.next_attempt_at = timezone.now() + timedelta(minutes=min(60, 2 ** max(0, batch.attempts - 1)))
        batch.save(update_fields=["status", "attempts", "error", "next_attempt_at"])
        return batch


def _body(batch: IngestBatch) -> bytes:
    if batch.body is None:
        raise ValueError("the batch body is gone (it was processed before)")
    return bytes(batch.body)


def _process_kubernetes(batch: IngestBatch) -> tuple[int, int, bool]:
    items = k8s.parse_event_list(_body(batch), max_depth=settings.AUDIT_INGEST_MAX_JSON_DEPTH)
    normalised = {}
    for item in items:
        event = k8s.normalise(item)
        normalised.setdefault(event.external_id, event)  # a batch may repeat an event
    namespaces = {e.namespace for e in normalised.values() if e.namespace}
    by_namespace: dict[str, list] = defaultdict(list)
    for project in get_directory().projects_in_namespaces(namespaces, cluster_name=batch.cluster_name):
        by_namespace[project.namespace].append(project)
    rows = []
    for event in normalised.values():
        candidates = by_namespace.get(event.namespace, [])
        # Without a cluster name, a namespace used on several clusters is ambiguous.
        project = candidates[0] if len(candidates) == 1 else None
        rows.append(AuditEvent(
            occurred_at=event.occurred_at,
            source=AuditEvent.Source.KUBERNETES,
            actor_id=event.actor_id,
            actor_name=event.actor_name,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            target_repr=event.target_repr,
            project_id=project.pk if project else None,
            project_name=project.name if project else "",
            outcome=event.outcome,
            source_ip=event.source_ip,
            user_agent=event.user_agent,
            request_id=event.request_id,
            details={**event.details, **({"cluster": batch.cluster_name} if batch.cluster_name else {})},
            external_id=event.external_id,
        ))
    created = audit.record_many(rows, json_native=True)  # details built from the parsed body
    return created, len(items) - created, False


def _process_kserve(batch: IngestBatch) -> tuple[int, int, bool]:
    project = get_directory().projects_by_id({batch.project_id}).get(batch.project_id) if batch.project_id else None
    keep_body = bool(project and project.keep_payload_bodies)
    events = cloudevents.parse_delivery(batch.headers or {}, _body(batch), batch.content_type,
                                        max_depth=settings.AUDIT_INGEST_MAX_JSON_DEPTH)
    created, duplicates = events_store_and_dispatch(batch.project_id, [(e, batch.received_at) for e in events],
                                                    batch_id=batch.pk)
    return created, duplicates, keep_body


# --- storing events and pairing -------------------------------------------------------------

@dataclass(frozen=True)
class _Half:
    """A part known in memory (inserted by this transaction as already dispatched)."""

    pk: None
    project_id: int
    event_id: str
    event_type: str
    time: object
    inference_service: str
    namespace: str
    component: str
    content_type: str
    metadata: dict
    annotations: dict
    body: bytes


_PART_COLUMNS = ("project_id", "event_id", "event_type", "time", "received_at", "inference_service", "namespace",
                 "component", "content_type", "metadata", "annotations", "body", "body_size", "batch_id",
                 "dispatched_at")


def _insert_parts(rows: list[tuple]) -> set[tuple[str, str]]:
    """Insert part rows (values in ``_PART_COLUMNS`` order), skipping those already stored, in
    one statement (PostgreSQL: arrays per column; elsewhere one multi-row statement per 500 rows); returns the (event id, type) of the rows inserted.
    ``ON CONFLICT DO NOTHING`` on the unique (project, id, type) index: a concurrent worker
    inserting the same event makes this one wait for its commit, then skip it."""
    if not rows:
        return set()
    if connection.vendor == "postgresql":  # one array per column: a statement of fixed text
        return set(bulk.execute_arrays(bulk.unnest_insert_sql(
            InferenceEventPart, [c if c != "batch_id" else "batch" for c in _PART_COLUMNS],
            suffix="ON CONFLICT (project_id, event_id, event_type) DO NOTHING RETURNING event_id, event_type"),
            bulk.columns_of(rows, len(_PART_COLUMNS))))
    table = InferenceEventPart._meta.db_table
    json_param = "%s"
    row_sql = "(" + ", ".join(json_param if c in ("metadata", "annotations") else "%s" for c in _PART_COLUMNS) + ")"
    inserted: set[tuple[str, str]] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(_PART_COLUMNS)}) VALUES {', '.join([row_sql] * len(chunk))} "  # noqa: S608 - fixed identifiers
                f"ON CONFLICT (project_id, event_id, event_type) DO NOTHING RETURNING event_id, event_type",
                [value for row in chunk for value in row],
            )
            inserted.update((event_id, event_type) for event_id, event_type in cursor.fetchall())
    return inserted


def events_store_and_dispatch(project_id: int, events: list[tuple[cloudevents.LoggerEvent, object]], *,
                              batch_id: int | None = None) -> tuple[int, int]:
    """Store the de-duplication records of a project's events ((event, received_at) pairs) and
    dispatch every pair they complete, inside the caller's transaction. Set-based: one insert
    per 500 events; a request and its response arriving together are paired in memory (their
    records are written already dispatched, without bodies); the others wait as parts with
    their bodies for their partner. An event already stored (same project, id and type) is a
    duplicate and adds nothing. Returns (new events, duplicates)."""
    unique: dict[tuple[str, str], tuple[cloudevents.LoggerEvent, object]] = {}
    for event, received_at in events:
        unique.setdefault((event.id, event.kind), (event, received_at))
    together = {event_id for event_id, kind in unique if kind == "request" and (event_id, "response") in unique}
    now = timezone.now()
    ops = connection.ops
    now_db = ops.adapt_datetimefield_value(now)
    rows = []
    for (event_id, kind), (event, received_at) in unique.items():
        paired = event_id in together
        rows.append((
            project_id, event_id, kind, ops.adapt_datetimefield_value(event.time or received_at), now_db,
            event.inference_service, event.namespace, event.component, event.content_type,
            json.dumps(event.metadata), json.dumps(event.annotations), None if paired else event.body,
            len(event.body), batch_id, now_db if paired else None,
        ))
    inserted = _insert_parts(rows)
    groups = []
    waiting: set[str] = set()
    stray: list[tuple[str, str]] = []
    for event_id in together:
        request_new, response_new = (event_id, "request") in inserted, (event_id, "response") in inserted
        if request_new and response_new:
            groups.append((_half(project_id, unique[(event_id, "request")]),
                           _half(project_id, unique[(event_id, "response")]), OK))
        elif request_new or response_new:
            # The other half was stored before (or by a concurrent worker): this one waits for
            # pairing like any lone half, so it needs its body and no dispatch mark.
            stray.append((event_id, "request" if request_new else "response"))
            waiting.add(event_id)
    waiting.update(event_id for event_id, kind in inserted if event_id not in together)
    for event_id, kind in stray:
        InferenceEventPart.objects.filter(project_id=project_id, event_id=event_id, event_type=kind).update(
            dispatched_at=None, body=unique[(event_id, kind)][0].body)
    _dispatch_parts(groups)
    if waiting:
        _pair_and_dispatch(project_id, waiting)
    return len(inserted), len(events) - len(inserted)


def _half(project_id: int, found: tuple[cloudevents.LoggerEvent, object]) -> _Half:
    event, received_at = found
    return _Half(pk=None, project_id=project_id, event_id=event.id, event_type=event.kind,
                 time=event.time or received_at, inference_service=event.inference_service,
                 namespace=event.namespace, component=event.component, content_type=event.content_type,
                 metadata=event.metadata, annotations=event.annotations, body=event.body)


# --- pairing --------------------------------------------------------------------------------

def _locked(qs):
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs


def _pair_and_dispatch(project_id: int, event_ids: set[str]) -> int:
    """Dispatch the complete pairs among ``event_ids`` of a project (inside a transaction)."""
    parts = list(_locked(InferenceEventPart.objects.filter(
        project_id=project_id, event_id__in=event_ids, dispatched_at__isnull=True)))
    by_id: dict[str, dict[str, InferenceEventPart]] = defaultdict(dict)
    for part in parts:
        by_id[part.event_id][part.event_type] = part
    complete = [halves for halves in by_id.values() if len(halves) == 2]
    return _dispatch_parts([(h["request"], h["response"], OK) for h in complete])


def _dispatch_parts(groups: list[tuple[InferenceEventPart | None, InferenceEventPart | None, str]]) -> int:
    """Build pairs from (request, response, status) groups, hand them to the consumers and mark
    the parts dispatched, all in the caller's transaction."""
    if not groups:
        return 0
    names = set()
    for request, response, _ in groups:
        first = request or response
        names.add((first.project_id, first.inference_service))
    endpoints = get_directory().endpoint_ids(names)
    pairs = []
    for request, response, status in groups:
        first = request or response
        pairs.append(InferencePair(
            project_id=first.project_id,
            endpoint_id=endpoints.get((first.project_id, first.inference_service)),
            namespace=first.namespace,
            inference_service=first.inference_service,
            component=first.component or (response.component if response else ""),
            event_id=first.event_id,
            request_time=request.time if request else None,
            response_time=response.time if response else None,
            request_body=bytes(request.body or b"") if request else b"",
            response_body=bytes(response.body or b"") if response else None,
            content_type=first.content_type,
            metadata=(request.metadata if request else None) or (response.metadata if response else {}) or {},
            annotations=(request.annotations if request else None) or (response.annotations if response else {}) or {},
            status=status,
        ))
    dispatch(pairs)
    ids = [p.pk for group in groups for p in group[:2] if p is not None and p.pk is not None]
    if ids:
        InferenceEventPart.objects.filter(pk__in=ids).update(dispatched_at=timezone.now(), body=None)
    return len(pairs)


def pairs_sweep(*, now=None, limit: int = 10_000) -> dict:
    """Complete pairs whose halves were processed by concurrent batches, and dispatch requests
    (status "timeout") and responses ("response_only") whose partner has not come within the
    pairing timeout. Returns counts."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.AUDIT_PAIRING_TIMEOUT_SECONDS)
    counts = {"paired": 0, "timeout": 0, "response_only": 0}
    pending = InferenceEventPart.objects.filter(dispatched_at__isnull=True)
    partner = InferenceEventPart.objects.filter(
        project_id=OuterRef("project_id"), event_id=OuterRef("event_id"), dispatched_at__isnull=True,
        event_type=InferenceEventPart.Type.REQUEST,
    )
    done = 0
    while done < limit:
        with transaction.atomic():
            rows = list(
                pending.filter(event_type=InferenceEventPart.Type.RESPONSE).filter(Exists(partner))
                .values_list("project_id", "event_id")[:SWEEP_CHUNK]
            )
            by_project = defaultdict(set)
            for project_id, event_id in rows:
                by_project[project_id].add(event_id)
            for project_id, ids in by_project.items():
                counts["paired"] += _pair_and_dispatch(project_id, ids)
        done += len(rows)
        if len(rows) < SWEEP_CHUNK:
            break
    for event_type in ("request", "response"):
        while done < limit:
            with transaction.atomic():
                stale = list(_locked(pending.filter(event_type=event_type, received_at__lt=cutoff)
                                     .order_by("received_at"))[:SWEEP_CHUNK])
                # A partner processed meanwhile makes it a normal pair.
                partners = {
                    (p.project_id, p.event_id): p
                    for p in InferenceEventPart.objects.filter(
                        dispatched_at__isnull=True, event_id__in={s.event_id for s in stale},
                    ).exclude(event_type=event_type)
                }
                groups = []
                for part in stale:
                    other = partners.get((part.project_id, part.event_id))
                    if other is not None:
                        request, response = (part, other) if event_type == "request" else (other, part)
                        groups.append((request, response, OK))
                    elif event_type == "request":
                        groups.append((part, None, TIMEOUT))
                    else:
                        groups.append((None, part, RESPONSE_ONLY))
                _dispatch_parts(groups)
                for _, _, group_status in groups:
                    counts["paired" if group_status == OK else group_status] += 1
            done += len(stale)
            if len(stale) < SWEEP_CHUNK:
                break
    return counts


# --- retries --------------------------------------------------------------------------------

def batch_retry(*, actor, batch: IngestBatch) -> IngestBatch:
    """Queue a failed batch again now (by hand); audited."""
    from audit.tasks import process_ingest_batch_task

    with transaction.atomic():
        batch = IngestBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status != IngestBatch.Status.FAILED:
            raise ValueError("only a failed batch can be retried")
        batch.next_attempt_at = timezone.now()
        batch.save(update_fields=["next_attempt_at"])
        project = SimpleNamespace(pk=batch.project_id, name=batch.project_name) if batch.project_id else None
        audit.record(action="ingest.retry", actor=actor, target_type="ingestbatch", target_id=str(batch.pk),
                     target_repr=str(batch), project=project,
                     details={"kind": batch.kind, "attempts": batch.attempts, "error": batch.error[:500]})
        process_ingest_batch_task.delay_on_commit(batch_id=batch.pk)
    return batch


def batch_retry_due(*, now=None, limit: int = 1000) -> int:
    """Enqueue failed batches whose backoff has passed (up to AUDIT_INGEST_MAX_ATTEMPTS) and
    pending ones whose task was evidently lost. Returns how many were enqueued."""
    from audit.tasks import process_ingest_batch_task

    now = now or timezone.now()
    failed = IngestBatch.objects.filter(
        status=IngestBatch.Status.FAILED, attempts__lt=settings.AUDIT_INGEST_MAX_ATTEMPTS, next_attempt_at__lte=now)
    lost = IngestBatch.objects.filter(status=IngestBatch.Status.PENDING, received_at__lt=now - PENDING_REDELIVERY_AFTER)
    ids = list(failed.values_list("pk", flat=True)[:limit]) + list(lost.values_list("pk", flat=True)[:limit])
    for batch_id in ids:
        process_ingest_batch_task.delay(batch_id=batch_id)
    return len(ids)
