"""Decisions: the bearer token, its scope and the caller's ``infer`` permission on the
endpoint, cached under the access version; every denial audited (allows are staged durably
by ``allows``)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import services as audit
from audit.models import AuditEvent
from console.access import tokens
from console.access.authz.cache import decision_cache, watcher
from console.access.authz.routing import normalise_host, path_refusal, path_route, resolve_target
from console.access.selectors import access_check
from console.permissions import is_platform_admin, protection_for
from endpoints.models import Endpoint, Project

logger = logging.getLogger(__name__)

INFER_SCOPE = "infer"
PRINCIPAL_HEADER = "x-console-principal"


@dataclass
class Decision:
    """The answer to one authorization request."""

    status: int
    reason: str
    principal: str = ""
    user_id: int | None = None
    endpoint_id: int | None = None
    endpoint_repr: str = ""
    project_id: int | None = None
    project_name: str = ""
    token_prefix: str = ""
    cached: bool = False

    @property
    def allowed(self) -> bool:
        return self.status == 200


@dataclass
class _Cached:
    version: int
    until: float
    decision: Decision
    hit: Decision | None = None  # the same decision marked cached, built once (never mutated)


# The process's own copy of the decisions it used (key -> _Cached), checked against the access
# version exactly as the shared cache's entries are: a warm check reads only the version (one
# Redis GET, or one primary-key query with LocMem) and unpickles nothing. Bounded by
# AUTHZ_CACHE_ENTRIES (cleared when full; the shared cache refills it).
_local: dict[str, _Cached] = {}


def _remember(key: str, entry: _Cached) -> _Cached:
    if entry.hit is None:
        entry.hit = Decision(**{**entry.decision.__dict__, "cached": True})
    if len(_local) >= getattr(settings, "AUTHZ_CACHE_ENTRIES", 100_000):
        _local.clear()
    _local[key] = entry
    return entry


def _cache_key(plaintext: str, host: str, path: str) -> str:
    routed = path_route(path)
    route = f"{routed[0]}/{routed[1]}" if routed else ""
    digest = hashlib.sha256(f"{plaintext}\n{host}\n{route}".encode()).hexdigest()
    return f"authz:v2:{digest}"  # v2: the decision classes moved (round 2); older pickles are never read


def _ttl() -> float:
    return float(getattr(settings, "AUTHZ_DECISION_TTL", 5))


def decide(*, host: str, path: str, authorization: str | None, now: datetime | None = None,
           raw_path: str | None = None) -> Decision:
    """Authorize one inference request (method-independent: Caller may send any).

    ``path`` is the original path decoded, ``raw_path`` the same as sent (percent-encoded,
    no query) when known; a path that is not normalised is refused (``path_refusal``)."""
    now = now or timezone.now()
    host = normalise_host(host)
    plaintext = tokens.bearer_value(authorization)
    if plaintext is None:
        return Decision(401, "no bearer token")
    if tokens.parse_token(plaintext) is None and not tokens.is_endpoint_credential(plaintext):
        return Decision(401, "malformed token")
    refusal = path_refusal(path, raw_path)
    if refusal:
        # Before the cache: its key holds only the endpoint the path names, which is exactly
        # what a dot segment would lie about. Rare and audited: name the principal.
        result = tokens.authenticate_inference(plaintext)
        if result is None:
            return Decision(401, "unknown, expired or revoked token, or deactivated user")
        user, token = result
        return Decision(403, refusal, principal=user.get_username(), user_id=user.pk,
                        token_prefix=token.display_prefix)
    cache = decision_cache()
    key = _cache_key(plaintext, host, path)
    ttl = _ttl()
    if ttl > 0:
        version = watcher.current()
        moment = now.timestamp()
        entry = _local.get(key)
        if entry is None or entry.version != version or entry.until <= moment:
            entry = cache.get(key)  # another process may have decided it
            if isinstance(entry, _Cached) and entry.version == version and entry.until > moment:
                _remember(key, entry)
            else:
                entry = None
        if entry is not None:
            return entry.hit
    result = tokens.authenticate_inference(plaintext)
    if result is None:
        return Decision(401, "unknown, expired or revoked token, or deactivated user")
    user, token = result
    until = now.timestamp() + ttl
    if token.expires_at is not None:
        until = min(until, token.expires_at.timestamp())
    decision = Decision(403, "", principal=user.get_username(), user_id=user.pk,
                        token_prefix=token.display_prefix)
    if not token.has_scope(INFER_SCOPE):
        decision.reason = "the token lacks the 'infer' scope"
    else:
        endpoint, why_not = resolve_target(host, path)
        if endpoint is None:
            decision.reason = why_not
        elif not tokens.credential_allows_endpoint(token, endpoint.pk):
            decision.reason = "the credential was issued for another endpoint"
        else:
            decision.endpoint_id = endpoint.pk
            decision.endpoint_repr = f"{endpoint.project_name}/{endpoint.name}"
            decision.project_id = endpoint.project_id
            decision.project_name = endpoint.project_name
            allowed, valid_until = caller_access(user, endpoint, now)
            if allowed:
                decision.status = 200
                decision.reason = "allowed"
                if valid_until is not None:
                    until = min(until, valid_until.timestamp())
            else:
                # Denials are rare and audited: explain them in full.

                decision.reason = access_check(user=user, obj=endpoint.load(), action="infer", now=now).reason
    if ttl > 0:
        entry = _Cached(version, until, decision)
        cache.set(key, entry, timeout=max(1, int(ttl) + 1))
        _remember(key, entry)
    return decision


def clear_cached_decisions() -> None:
    """Forget every cached decision: the shared cache's and this process's copies (tests; in
    service, a change bumps the access version instead)."""
    decision_cache().clear()
    _local.clear()


_caller_sql: str | None = None


def _infer_rows_sql() -> str:
    """One UNION ALL over the four direct-FK tables that can give ``infer`` on an endpoint
    (the endpoint's user and group rows, its project's user and group rows), unexpired rows
    only: exactly the rows ``console.permissions.visibility_filter`` reads, in one round trip
    and without the ORM's query-building cost (this is the cold path of every decision)."""
    global _caller_sql
    if _caller_sql is None:
        memberships = get_user_model().groups.through._meta.db_table
        permission = Permission._meta.db_table
        parts = []
        for model in (Endpoint, Project):
            protection = protection_for(model)
            user_table, group_table = protection.user_perms._meta.db_table, protection.group_perms._meta.db_table
            live = "(t.expires_at IS NULL OR t.expires_at > %s)"
            # Table names come from model metadata; every value is a parameter.
            parts.append(f"SELECT t.expires_at FROM {user_table} t JOIN {permission} p ON p.id = t.permission_id "  # noqa: S608
                         f"WHERE t.content_object_id = %s AND t.user_id = %s AND p.codename = %s AND {live}")
            parts.append(f"SELECT t.expires_at FROM {group_table} t JOIN {permission} p ON p.id = t.permission_id "  # noqa: S608
                         f"JOIN {memberships} m ON m.group_id = t.group_id "
                         f"WHERE t.content_object_id = %s AND m.user_id = %s AND p.codename = %s AND {live}")
        _caller_sql = " UNION ALL ".join(parts)
    return _caller_sql


def _aware(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or timezone.is_aware(value) else timezone.make_aware(value, UTC)

    parsed = parse_datetime(str(value))
    return parsed if parsed is None or timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def caller_access(user, endpoint, now: datetime) -> tuple[bool, datetime | None]:
    """(may ``user`` call ``endpoint``, until when): the Caller permission directly, through a
    team, through the endpoint's project, or as a platform admin. Agrees with
    ``console.permissions.can(user, endpoint, "infer")`` (tested); until is None when no
    expiry bounds it."""
    at = connection.ops.adapt_datetimefield_value(now)
    params = []
    for object_id, codename in ((endpoint.pk, "infer_endpoint"), (endpoint.project_id, "infer_project")):
        params += [object_id, user.pk, codename, at, object_id, user.pk, codename, at]
    with connection.cursor() as cursor:
        cursor.execute(_infer_rows_sql(), params)
        expiries = [_aware(row[0]) for row in cursor.fetchall()]
    if expiries:
        return True, (None if None in expiries else max(expiries))
    if is_platform_admin(user):
        return True, None
    return False, None


# --- audit ---------------------------------------------------------------------------------------

def audit_denial(decision: Decision, *, method: str, host: str, path: str, raw_path: str | None = None) -> None:
    audit.record(
        action="infer.authorize", source=AuditEvent.Source.AUTHZ, outcome=audit.DENIED,
        actor_name=decision.principal or "(anonymous)",
        target_type="endpoint" if decision.endpoint_id else "host",
        target_id=str(decision.endpoint_id or ""),
        target_repr=decision.endpoint_repr or normalise_host(host)[:512],
        details={"status": decision.status, "reason": decision.reason, "method": method, "host": host,
                 "path": path[:1000], "token": decision.token_prefix, "user_id": decision.user_id,
                 "project_id": decision.project_id, "project": decision.project_name,
                 **({"raw_path": raw_path[:1000]} if raw_path is not None else {})},
    )
