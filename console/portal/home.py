"""Reads behind the home page: what each person should see first when they sign in.

A user may be several personas at once; each section applies on its own:

- **endpoints** — anyone who can see an endpoint, holds a grant, or has no global role (they
  are told why the page is empty): their endpoints with phases, what needs attention (Failed
  or Degraded endpoints, drift alerts) and their own grants that lapse within a week;
- **platform** — platform admins: grants expiring within a week, the latest grant changes,
  open reconciler alerts and a few counts;
- **trail** — auditors (and platform admins): the newest seal, the events waiting for the
  sealer, the last integrity verification and failed ingest batches.

Endpoints come only through the permission chokepoint (``endpoint_list_visible_to``); the
other sections are shown only to the roles whose pages already show the same rows. Every
section costs a fixed number of queries, however many endpoints or grants there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Q, Sum
from django.utils import timezone

from audit import sealing
from audit import selectors as audit_selectors
from audit.models import AuditEvent, AuditSeal, IngestBatch
from console.access import selectors as console_selectors
from console.access.grants import live_q
from console.access.models import Grant
from console.access.roles import GLOBAL_ROLES
from console.permissions import is_platform_admin
from endpoints import selectors as endpoint_selectors
from endpoints.models import Endpoint, EndpointStatus, Project
from monitoring import selectors as monitoring_selectors

EXPIRY_WINDOW_DAYS = 7
ENDPOINT_ROWS = 10
ATTENTION_ROWS = 10
GRANT_ROWS = 8
BATCH_ROWS = 3
GRANT_ACTIONS = ("grant.create", "grant.revoke", "grant.expire")

_GRANT_RELATED = ("user", "group", "project", "registered_model__project", "endpoint__project")


@dataclass
class EndpointSection:
    endpoints: list
    total: int
    failing: list
    drifting: list[dict]
    expiring: list  # the user's own grants (direct or through a team) lapsing soon
    has_grants: bool
    can_deploy: bool
    all_projects: bool  # platform admin: every endpoint, not only granted ones

    @property
    def needs_attention(self) -> bool:
        return bool(self.failing or self.drifting or self.expiring)


@dataclass
class PlatformSection:
    expiring: list
    expiring_total: int
    recent_changes: list
    alerts: list
    counts: dict = field(default_factory=dict)


@dataclass
class TrailSection:
    newest_seal: object | None
    sealed_events: int
    unsealed: int
    last_verification: object | None
    failed_batches: list
    failed_batch_total: int
    ingest: object = None  # audit.selectors.IngestHealth
    unsealed_limit: int = 0  # the count stops above this: "more than"


def _head(queryset, limit: int) -> tuple[list, int]:
    """The first ``limit`` rows and how many there are in all (counted only when the head is
    full, so a short list costs one query)."""
    rows = list(queryset[:limit])
    return rows, (len(rows) if len(rows) < limit else queryset.order_by().count())


def _own_grants(user):
    return Grant.objects.filter(live_q()).filter(Q(user=user) | Q(group__user=user))


def endpoint_section(user, *, now=None) -> EndpointSection:
    now = now or timezone.now()
    visible = endpoint_selectors.endpoint_list_visible_to(user=user)
    endpoints, total = _head(visible.order_by("project__name", "name"), ENDPOINT_ROWS)
    failing = list(visible.filter(status__phase__in=[EndpointStatus.Phase.FAILED, EndpointStatus.Phase.DEGRADED])
                   .order_by("project__name", "name")[:ATTENTION_ROWS])
    expiring = list(_own_grants(user).filter(expires_at__isnull=False,
                                             expires_at__lte=now + timedelta(days=EXPIRY_WINDOW_DAYS))
                    .select_related(*_GRANT_RELATED).distinct().order_by("expires_at"))
    admin = is_platform_admin(user)
    return EndpointSection(
        endpoints=endpoints, total=total, failing=failing,
        drifting=monitoring_selectors.endpoints_in_drift_alert(user=user, limit=ATTENTION_ROWS),
        expiring=expiring,
        has_grants=admin or bool(expiring) or _own_grants(user).exists(),
        can_deploy=endpoint_selectors.project_list_visible_to(user=user, action="deploy").exists(),
        all_projects=admin,
    )


def platform_section(user, *, now=None) -> PlatformSection:
    expiring, expiring_total = _head(console_selectors.grants_expiring_soon(days=EXPIRY_WINDOW_DAYS), GRANT_ROWS)
    return PlatformSection(
        expiring=expiring,
        expiring_total=expiring_total,
        recent_changes=list(audit_selectors.event_list_visible_to(user=user).filter(action__in=GRANT_ACTIONS)
                            .order_by("-occurred_at", "-id")[:GRANT_ROWS]),
        alerts=list(endpoint_selectors.alerts_active()),
        counts={"projects": Project.objects.count(), "endpoints": Endpoint.objects.count(),
                "grants": Grant.objects.filter(live_q(now)).count()},
    )


# The home counts unsealed events up to this many (a trail nobody sealed would cost a full count).
UNSEALED_LIMIT = 10_000


def trail_section() -> TrailSection:
    newest = AuditSeal.objects.order_by("-sequence").only(
        "sequence", "created_at", "event_count", "last_event_id", "floor").first()
    sealed = AuditSeal.objects.aggregate(events=Sum("event_count")) if newest else {}
    unsealed = sealing.unsealed_count(newest, limit=UNSEALED_LIMIT)
    batches, batch_total = _head(IngestBatch.objects.filter(status=IngestBatch.Status.FAILED)
                                 .defer("body", "headers").order_by("-received_at", "-id"), BATCH_ROWS)
    return TrailSection(
        newest_seal=newest, sealed_events=sealed.get("events") or 0, unsealed=unsealed,
        last_verification=AuditEvent.objects.filter(action="audit.verify").order_by("-occurred_at", "-id").first(),
        failed_batches=batches,
        failed_batch_total=batch_total,
        ingest=audit_selectors.ingest_health(),
        unsealed_limit=UNSEALED_LIMIT,
    )


def shows_endpoints(user) -> bool:
    """Everyone but a pure auditor or ingester (a global role, no grant, nothing visible)."""
    if is_platform_admin(user):
        return True
    if not any(group.name in GLOBAL_ROLES for group in user.groups.all()):
        return True
    return _own_grants(user).exists()


def home_for(user) -> dict:
    """The sections of ``user``'s home page (absent ones are None)."""
    now = timezone.now()
    return {
        "endpoint_section": endpoint_section(user, now=now) if shows_endpoints(user) else None,
        "platform_section": platform_section(user, now=now) if is_platform_admin(user) else None,
        "trail_section": trail_section() if audit_selectors.can_view_all(user) else None,
    }
