"""Per-user reads of the audit trail.

Who sees what: auditors (``audit.view_auditevent``: the Auditor role; platform admins have
it too) see every event; project owners (``manage`` on a project, decided by the permission
chokepoint on the domain's side of ``audit.directory``) see the events of their projects;
everyone else sees none. Ingest batches and integrity checks are for auditors only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import BooleanField, Count, Max, Min, Q, Sum, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404
from django.utils import timezone

from audit.directory import EndpointRef, ProjectIds, get_directory
from audit.models import AuditEvent, AuditSeal, IngestBatch, IngestBufferEntry, IngestRefusal
from console.ids import parse_id
from console.permissions import is_platform_admin, is_signed_in

VIEW_ALL_PERMISSION = "audit.view_auditevent"
# The text the free-text search looks in, as the trigram index of migration 0006 indexes it
# (PostgreSQL; the two must stay equal for the index to be used).
SEARCH_TEXT_SQL = (
    "(actor_name || ' ' || action || ' ' || target_repr || ' ' || project_name || ' ' || request_id || ' ' "
    "|| external_id || ' ' || coalesce(host(source_ip), '') || ' ' || details::text)"
)


def can_view_all(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active
                and (is_platform_admin(user) or user.has_perm(VIEW_ALL_PERMISSION)))


def owned_project_ids(user) -> ProjectIds:
    """Projects whose audit events the user may read as their owner (a lazy query of ids)."""
    if not is_signed_in(user):
        return ()
    return get_directory().owned_project_ids(user)


def _any(ids: ProjectIds) -> bool:
    # A lazy query answers with EXISTS instead of fetching every id.
    exists = getattr(ids, "exists", None)
    return exists() if callable(exists) else any(True for _ in ids)


def trail_scope(user) -> ProjectIds | None:
    """The projects whose events ``user`` reads: None for every event (auditors), else the
    owned projects' ids."""
    return None if can_view_all(user) else owned_project_ids(user)


def can_view_any(user) -> bool:
    """May open the trail at all (auditor, or owner of at least one project)."""
    return can_view_all(user) or _any(owned_project_ids(user))


def event_list_visible_to(*, user):
    scope = trail_scope(user)
    if scope is None:
        return AuditEvent.objects.all()
    if not is_signed_in(user):
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(project_id__in=scope)


def event_get(*, user, pk: int) -> AuditEvent:
    return get_object_or_404(event_list_visible_to(user=user), pk=pk)


@dataclass(frozen=True)
class EventFilters:
    """Search criteria of the trail (all optional)."""

    start: datetime | None = None
    end: datetime | None = None
    actor: str = ""
    action: str = ""
    target: str = ""
    target_type: str = ""
    target_id: str = ""
    project: str = ""
    endpoint: EndpointRef | None = None
    source: str = ""
    outcome: str = ""
    q: str = ""

    def as_dict(self) -> dict:
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value in (None, ""):
                continue
            if name == "endpoint":
                value = value.label
            out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out


def endpoint_condition(endpoint: EndpointRef) -> Q:
    """Events about an endpoint: console actions on it, its inference I/O, and Kubernetes API
    calls on its InferenceService."""
    isvc = f"{endpoint.namespace}/{endpoint.name}"
    return (
        Q(target_type="endpoint", target_id=str(endpoint.pk))
        | Q(target_type="k8s:inferenceservices", target_id=isvc)
        | Q(target_type="inferenceservice", target_id=isvc, project_id=endpoint.project_id)
    )


def event_search(*, user, filters: EventFilters):
    """The events the user may see that match ``filters``, newest first."""
    qs = event_list_visible_to(user=user)
    if filters.start:
        qs = qs.filter(occurred_at__gte=filters.start)
    if filters.end:
        qs = qs.filter(occurred_at__lt=filters.end)
    if filters.actor:
        qs = qs.filter(Q(actor_name__icontains=filters.actor) | Q(actor_id=filters.actor))
    if filters.action:
        qs = qs.filter(action__istartswith=filters.action)
    if filters.target:
        qs = qs.filter(Q(target_repr__icontains=filters.target) | Q(target_id=filters.target))
    if filters.target_type:
        qs = qs.filter(target_type=filters.target_type)
    if filters.target_id:
        qs = qs.filter(target_id=filters.target_id)
    if filters.project:
        condition = Q(project_name=filters.project)
        if parse_id(filters.project) is not None:
            condition |= Q(project_id=parse_id(filters.project))
        qs = qs.filter(condition)
    if filters.endpoint is not None:
        qs = qs.filter(endpoint_condition(filters.endpoint))
    if filters.source:
        qs = qs.filter(source=filters.source)
    if filters.outcome:
        qs = qs.filter(outcome=filters.outcome)
    if filters.q and connection.vendor == "postgresql":
        # One ILIKE over the trigram-indexed expression (migration 0006): index-backed for
        # terms of three characters or more.
        like = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        qs = qs.filter(RawSQL(f"{SEARCH_TEXT_SQL} ILIKE %s", [like], output_field=BooleanField()))  # noqa: S611 - fixed SQL, the term is a parameter
    elif filters.q:
        term = filters.q
        condition = (
            Q(actor_name__icontains=term) | Q(action__icontains=term) | Q(target_repr__icontains=term)
            | Q(project_name__icontains=term) | Q(request_id=term) | Q(external_id=term)
            | Q(details_text__icontains=term)
        )
        if _looks_like_ip(term):
            condition |= Q(source_ip=term)
        qs = qs.annotate(details_text=Cast("details", TextField())).filter(condition)
    return qs.order_by("-occurred_at", "-id")


def _looks_like_ip(term: str) -> bool:
    try:
        ipaddress.ip_address(term)
    except ValueError:
        return False
    return True


def endpoint_choices(*, user, ids: Collection[int] | None = None) -> list[EndpointRef]:
    """Endpoints offered in the trail's endpoint filter (only ``ids`` when given): every
    endpoint for auditors, the endpoints of their projects for owners."""
    return get_directory().endpoints(within=trail_scope(user), ids=ids)


def endpoint_get(*, user, pk: int | None = None, label: str = "") -> EndpointRef | None:
    """One endpoint the user may filter the trail on, by id or by ``project/name``, or None
    (one query either way)."""
    if label:
        project_name, _, name = label.partition("/")
        if not project_name or not name:
            return None
        found = get_directory().endpoints(within=trail_scope(user), labels={(project_name, name)})
    else:
        found = endpoint_choices(user=user, ids={pk})
    return found[0] if found else None


def project_choices(*, user) -> list[str]:
    """Names of the projects offered in the trail's project filter."""
    return [project.name for project in get_directory().projects(within=trail_scope(user))]


def seal_summary() -> dict:
    last = AuditSeal.objects.order_by("-sequence").only("sequence", "created_at", "key_id", "last_event_id").first()
    return {"last": last, "count": last.sequence if last else 0}


def verification_history(*, limit: int = 10):
    return AuditEvent.objects.filter(action="audit.verify").order_by("-occurred_at", "-id")[:limit]


def batch_list(*, status: str = "", kind: str = ""):
    qs = IngestBatch.objects.defer("body", "headers")
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-received_at", "-id")


def batch_counts() -> dict[str, int]:
    return dict(IngestBatch.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))


@dataclass(frozen=True)
class IngestHealth:
    """The payload-logger buffer as the auditor's home shows it: waiting deliveries, the age of
    the oldest, and the deliveries refused because it was full (per project and InferenceService)."""

    depth: int
    lag_seconds: float
    refused: int
    refused_by_service: list  # (project name, InferenceService, count, last refused at), most first


def ingest_health(*, hours: int = 24, limit: int = 10) -> IngestHealth:
    """Two queries: the buffer's depth and oldest row together, and the refusals of the last ``hours``."""
    now = timezone.now()
    waiting = IngestBufferEntry.objects.aggregate(depth=Count("id"), oldest=Min("received_at"))
    refusals = list(
        IngestRefusal.objects.filter(hour__gte=now - timedelta(hours=hours))
        .values("project_id", "inference_service").annotate(total=Sum("count"), last=Max("last_refused_at"))
        .order_by("-total")
    )
    projects = get_directory().projects_by_id({r["project_id"] for r in refusals[:limit]}) if refusals else {}
    names = {pk: ref.name for pk, ref in projects.items()}
    rows = [(names.get(r["project_id"], f"project {r['project_id']}"), r["inference_service"], r["total"], r["last"])
            for r in refusals[:limit]]
    lag = (now - waiting["oldest"]).total_seconds() if waiting["oldest"] else 0.0
    return IngestHealth(depth=waiting["depth"], lag_seconds=max(0.0, lag),
                        refused=sum(r["total"] for r in refusals), refused_by_service=rows)


def ingest_refusals_for(*, project_id: int, inference_service: str, since: datetime) -> int:
    """Deliveries of one InferenceService refused since the hour holding ``since`` (one query)."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    found = IngestRefusal.objects.filter(
        project_id=project_id, inference_service=inference_service, hour__gte=hour).aggregate(total=Sum("count"))
    return int(found["total"] or 0)
