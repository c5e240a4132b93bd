"""Inference authorization: the HTTP service Envoy's ext_authz filter asks before every
inference request (kserve.md §8, architecture.md §4).

Envoy (configured as in ``deploy/istio/``) sends the original method and path, prefixed by
the provider's ``pathPrefix`` (``/authz/check``), with the original ``Host`` and only the
headers listed in ``includeRequestHeadersInCheck`` (``authorization``). No body. We answer:

- **200** with ``x-console-principal: <username>`` when the bearer token's user holds the
  ``infer`` permission (the Caller role) on the endpoint — directly, through a team, through
  the endpoint's project, or as a platform admin. Envoy copies the header upstream
  (``headersToUpstreamOnAllow``), overriding anything the client sent, so the KServe payload
  logger (``metadataHeaders: [X-Console-Principal]``) carries the real caller.
- **401** without a token, or with an unknown, expired or revoked one, or one whose user is
  deactivated;
- **403** when the token lacks the ``infer`` scope, the endpoint is unknown or ambiguous,
  the path is not normalised, or the user may not call it.

A client-sent ``x-console-principal`` is never read.

The endpoint is found by the request's host — the host of its observed status URL, the
Knative form ``<name>.<namespace>.<domain>``, the Standard form ``<name>-<namespace>.<domain>``
and the predictor hosts (``<name>-predictor.<namespace>.<domain>``,
``<name>-predictor-<namespace>.<domain>``, in-cluster ``*.svc.cluster.local``) — or, for
path-based routing, by the path prefix ``AUTHZ_PATH_TEMPLATE`` (``/serving/{namespace}/{name}``).
When the host and the path prefix disagree (the host names another endpoint than the path, or
the path names none), the request is refused rather than guessed (``resolve_target``).

Paths that are not normalised — ``.``/``..`` segments, encoded dots, slashes or backslashes,
backslashes, ``//`` — are refused (403) in the path as Envoy sent it (gunicorn's ``RAW_URI``)
and as decoded, whatever the mesh's own normalisation (``path_refusal``).

Decisions are cached for ``AUTHZ_DECISION_TTL`` seconds (never beyond the expiry of the
grant or token they rest on) under the current *access version*: a counter bumped in the
same transaction as every grant, token, user or team change, so a revoked token or grant
denies at once in every process. With Redis the counter is also kept in the shared cache
(one round trip per decision); with the per-process LocMem cache it is read from its
database row (one primary-key query).

Every denial is audited (source ``authz``); allows are counted in memory and written as one
``infer.allow`` event per principal, endpoint, minute and web process, with the count.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from console.access.models import AccessVersion

logger = logging.getLogger(__name__)

VERSION_KEY = "access:access-version"
PRINCIPAL_HEADER = "x-console-principal"
INFER_SCOPE = "infer"
CLUSTER_LOCAL = "svc.cluster.local"


# --- access version (invalidation) -------------------------------------------------------------

def decision_cache():
    return caches[getattr(settings, "AUTHZ_CACHE_ALIAS", "default")]


def cache_is_shared() -> bool:
    """True when every web process sees the same cache (Redis), False for LocMem."""
    backend = type(decision_cache()).__module__
    return not (backend.endswith("locmem") or backend.endswith("dummy"))


def invalidate_decisions() -> None:
    """Drop every cached authorization decision, in every process.

    The database counter moves in the caller's transaction (it commits with the change, so a
    process never caches an old decision under the new version). With a shared cache the
    cached counter moves now and again after commit, for the same reason.
    """
    if not AccessVersion.objects.filter(pk=1).update(version=F("version") + 1):
        AccessVersion.objects.get_or_create(pk=1, defaults={"version": 1})
    if cache_is_shared():
        _bump_cached_version()
        transaction.on_commit(_bump_cached_version)


def _bump_cached_version() -> None:
    cache = decision_cache()
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)


def _db_version() -> int:
    # A plain cursor: this runs on every cached decision (LocMem), the ORM would double its cost.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT version FROM {AccessVersion._meta.db_table} WHERE id = 1")  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else 0


def _invalidate_on_change(sender, **kwargs) -> None:
    invalidate_decisions()


def _invalidate_on_user_save(sender, instance, update_fields=None, **kwargs) -> None:
    # Logins touch last_login and password changes the hash: neither alters a decision.
    if update_fields is not None and set(update_fields) <= {"last_login", "password"}:
        return
    invalidate_decisions()


def _invalidate_on_membership(sender, action, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        invalidate_decisions()


def connect_signals() -> None:
    """Changes made outside the console's services (the Django admin, a shell, guardian's
    shortcuts) must drop cached decisions too; these receivers only invalidate, they audit
    nothing (the services do that explicitly)."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.db.models.signals import m2m_changed, post_delete, post_save
    from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

    from console.access.models import ApiToken, Grant

    User = get_user_model()
    post_save.connect(_invalidate_on_user_save, sender=User, dispatch_uid="authz-user-save")
    post_delete.connect(_invalidate_on_change, sender=User, dispatch_uid="authz-user-delete")
    m2m_changed.connect(_invalidate_on_membership, sender=User.groups.through, dispatch_uid="authz-membership")
    for model in (ApiToken, Grant):
        post_delete.connect(_invalidate_on_change, sender=model, dispatch_uid=f"authz-{model.__name__}-delete")
    # Every object-permission table (guardian's direct-FK ones and its generic ones).
    for table in apps.get_models():
        if issubclass(table, UserObjectPermissionBase | GroupObjectPermissionBase):
            post_save.connect(_invalidate_on_change, sender=table, dispatch_uid=f"authz-{table.__name__}-save")
            post_delete.connect(_invalidate_on_change, sender=table, dispatch_uid=f"authz-{table.__name__}-del")


# --- finding the endpoint ------------------------------------------------------------------------

def normalise_host(host: str) -> str:
    host = (host or "").strip().lower().rstrip(".")
    if host.startswith("["):  # IPv6 literal: never an endpoint host
        return host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _path_template_regex() -> re.Pattern:
    template = getattr(settings, "AUTHZ_PATH_TEMPLATE", "/serving/{namespace}/{name}").rstrip("/")
    pattern = re.escape(template).replace(r"\{namespace\}", r"(?P<namespace>[a-z0-9-]{1,63})").replace(
        r"\{name\}", r"(?P<name>[a-z0-9-]{1,63})")
    return re.compile(f"^{pattern}(?:/|$)")


def path_route(path: str) -> tuple[str, str] | None:
    """(namespace, name) when the original path starts with the path-routing prefix."""
    match = _path_template_regex().match(path or "")
    return (match["namespace"], match["name"]) if match else None


# Spellings that let a path mean one thing here and another to the gateway or the model server
# (dot segments, encoded dots, slashes and backslashes, double slashes): Envoy normalises paths
# before ext_authz when the mesh asks it to (deploy/istio/), and we refuse what it would have
# changed anyway.
_ENCODED_SEPARATORS = {"%2e": "an encoded dot", "%2f": "an encoded slash", "%5c": "an encoded backslash"}


def path_refusal(path: str, raw_path: str | None = None) -> str:
    """Why the checked path is refused as not normalised, or "" when it is fine.

    ``path`` is the original path as Django decoded it, ``raw_path`` the same still
    percent-encoded as Envoy sent it (without the query), when the server reports it. Both are
    checked (a double-encoded ``%252e`` decodes to ``%2e``), and with the raw path, the
    path-routing prefix must name the same endpoint undecoded as decoded."""
    for candidate in (raw_path, path):
        if candidate is None:
            continue
        lowered = candidate.lower()
        for spelling, what in _ENCODED_SEPARATORS.items():
            if spelling in lowered:
                return f"the path is not normalised: it contains {what} ({spelling.upper()})"
        if "\\" in candidate:
            return "the path is not normalised: it contains a backslash"
        if "//" in candidate:
            return "the path is not normalised: it contains an empty segment (//)"
        if any(segment in (".", "..") for segment in candidate.split("/")):
            return "the path is not normalised: it contains a dot segment (. or ..)"
    if raw_path is not None and path_route(original_path(raw_path)) != path_route(path):
        return "the path is not normalised: its routing prefix is percent-encoded"
    return ""


def _host_candidates(host: str) -> list[tuple[str, str, str]]:
    """(name, namespace, domain) readings of ``host`` in KServe's host forms."""
    labels = host.split(".")
    found: list[tuple[str, str, str]] = []
    if len(labels) >= 3:
        first, namespace, domain = labels[0], labels[1], ".".join(labels[2:])
        found.append((first, namespace, domain))  # Knative <name>.<ns>.<domain>
        if first.endswith("-predictor"):
            found.append((first[: -len("-predictor")], namespace, domain))
    if len(labels) >= 2:
        first, domain = labels[0], ".".join(labels[1:])
        for i, char in enumerate(first):  # Standard <name>-<ns>.<domain>
            if char == "-" and 0 < i < len(first) - 1:
                name, namespace = first[:i], first[i + 1:]
                found.append((name, namespace, domain))
                if name.endswith("-predictor"):
                    found.append((name[: -len("-predictor")], namespace, domain))
    return found


def _status_host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return normalise_host(urlsplit(url).netloc) if url else ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class EndpointRef:
    """What a decision needs of an endpoint (read as plain values: the ORM's object building
    would be most of a cold decision's cost)."""

    pk: int
    name: str
    project_id: int
    project_name: str
    namespace: str
    domain: str
    urls: tuple[str, ...] = ()

    def load(self):
        from endpoints.models import Endpoint

        return Endpoint.objects.select_related("project", "project__cluster").get(pk=self.pk)


def _served(ref: EndpointRef, host: str) -> bool:
    return host in _hosts(ref.name, ref.namespace, ref.domain, ref.urls)


def resolve_endpoint(host: str, path: str = "") -> EndpointRef | None:
    """The endpoint an inference request to ``host`` + ``path`` is for, or None (unknown,
    ambiguous, or host and path naming different endpoints): ``resolve_target`` without the
    reason."""
    return resolve_target(host, path)[0]


def resolve_target(host: str, path: str = "") -> tuple[EndpointRef | None, str]:
    """(the endpoint, "") or (None, why not) for an inference request to ``host`` + ``path``.

    Without the path-routing prefix the host alone decides. With it the path names the
    endpoint and the host must agree: a host the endpoint is served under, or one that names
    no endpoint (the gateway's); a host that reads as another endpoint — one of KServe's host
    forms in a project's namespace, or another endpoint's status URL host — is refused rather
    than guessed (otherwise the gateway may route by the host while we decide by the path).

    Index lookups only: projects by namespace, then endpoints by (project, name); the observed
    status URL is scanned only for hosts in none of KServe's forms (a custom domain template)."""
    from endpoints.models import Endpoint, Project

    host = normalise_host(host)
    routed = path_route(path)
    host_readings = [(name, namespace) for name, namespace, _domain in _host_candidates(host)] if host else []
    readings = host_readings + ([(routed[1], routed[0])] if routed is not None else [])
    projects: dict[int, tuple[str, str, str]] = {}
    found: list[EndpointRef] = []
    if readings:
        projects = {row[0]: row[1:] for row in Project.objects.order_by().filter(
            namespace__in={namespace for _, namespace in readings}).values_list(
            "pk", "name", "namespace", "cluster__ingress_domain")}
        if projects:
            rows = Endpoint.objects.order_by().filter(
                project_id__in=list(projects), name__in={name for name, _ in readings}).values_list(
                "pk", "name", "project_id", "status__url", "status__address_url")
            for pk, name, project_id, url, address_url in rows:
                project_name, namespace, domain = projects[project_id]
                if (name, namespace) in readings:
                    found.append(EndpointRef(pk, name, project_id, project_name, namespace, domain.lower(),
                                             tuple(u for u in (url, address_url) if u)))
    if routed is None:
        endpoint = _by_host(host, found)
        return (endpoint, "") if endpoint is not None else (None, f"no endpoint is served at {host or '(no host)'}")
    namespace, name = routed
    by_path = [e for e in found if (e.name, e.namespace) == (name, namespace)]
    if len(by_path) > 1:  # the same namespace on several clusters: the host's domain decides
        by_path = [e for e in by_path if host == e.domain or host.endswith("." + e.domain)]
    if len(by_path) != 1:
        what = "several endpoints (one per cluster) are" if by_path else "no endpoint is"
        return None, f"{what} served at {host or '(no host)'} (path {namespace}/{name})"
    target = by_path[0]
    if not host or _served(target, host) or (name, namespace) in host_readings:
        return target, ""
    # The host is not one the path's endpoint is served under: it may only be a host that
    # names no endpoint at all (the gateway's, for path-based routing).
    served_there = sorted(f"{e.namespace}/{e.name}" for e in found if _served(e, host))
    project_namespaces = {ns for _name, ns, _domain in projects.values()}
    named = served_there or sorted({f"{ns}/{n}" for n, ns in host_readings if ns in project_namespaces})
    if not named:
        other = _dedicated_status_host(host)
        named = [f"{other.namespace}/{other.name}"] if other is not None else []
    if named:
        return None, (f"the host {host} names {' or '.join(named)} but the path names {namespace}/{name}: "
                      "refused rather than guessed")
    return target, ""


def _by_host(host: str, found: list[EndpointRef]) -> EndpointRef | None:
    """The endpoint ``host`` alone names (``found``: the endpoints its KServe readings name)."""
    matches = [e for e in found if host and _served(e, host)]
    if len(matches) == 1:
        return matches[0]
    exact = [e for e in matches if e.urls and _status_host(e.urls[0]) == host]
    if len(exact) == 1:
        return exact[0]
    if matches:
        return None  # ambiguous: refuse rather than guess
    return _dedicated_status_host(host) if host else None


def _dedicated_status_host(host: str) -> EndpointRef | None:
    """The endpoint whose observed status URL is exactly ``http(s)://<host>`` (a custom domain
    template), if any."""
    from endpoints.models import EndpointStatus

    row = EndpointStatus.objects.order_by().filter(url__in=[f"http://{host}", f"https://{host}"]).values_list(
        "endpoint_id", "endpoint__name", "endpoint__project_id", "endpoint__project__name",
        "endpoint__project__namespace", "endpoint__project__cluster__ingress_domain", "url", "address_url").first()
    if row is None:
        return None
    return EndpointRef(*row[:5], row[5].lower(), tuple(u for u in row[6:] if u))


def _has_status(endpoint) -> bool:
    try:
        endpoint.status  # noqa: B018 - a missing one-to-one raises
    except Exception:  # noqa: BLE001
        return False
    return True


def _hosts(name: str, namespace: str, domain: str, urls) -> set[str]:
    hosts = {
        f"{name}.{namespace}.{domain}", f"{name}-{namespace}.{domain}",
        f"{name}-predictor.{namespace}.{domain}", f"{name}-predictor-{namespace}.{domain}",
        f"{name}.{namespace}.{CLUSTER_LOCAL}", f"{name}-predictor.{namespace}.{CLUSTER_LOCAL}",
    }
    hosts.update(_status_host(url) for url in urls if url)
    hosts.discard("")
    return hosts


def served_hosts(endpoint) -> set[str]:
    """Every host under which KServe serves ``endpoint`` (a model instance)."""
    urls = (endpoint.status.url, endpoint.status.address_url) if _has_status(endpoint) else ()
    return _hosts(endpoint.name, endpoint.project.namespace, endpoint.project.cluster.ingress_domain.lower(), urls)


# --- decisions --------------------------------------------------------------------------------------

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


def _cache_key(plaintext: str, host: str, path: str) -> str:
    routed = path_route(path)
    route = f"{routed[0]}/{routed[1]}" if routed else ""
    digest = hashlib.sha256(f"{plaintext}\n{host}\n{route}".encode()).hexdigest()
    return f"authz:d:{digest}"


def _ttl() -> float:
    return float(getattr(settings, "AUTHZ_DECISION_TTL", 5))


def decide(*, host: str, path: str, authorization: str | None, now: datetime | None = None,
           raw_path: str | None = None) -> Decision:
    """Authorize one inference request (method-independent: Caller may send any).

    ``path`` is the original path decoded, ``raw_path`` the same as sent (percent-encoded,
    no query) when known; a path that is not normalised is refused (``path_refusal``)."""
    from console.access import tokens

    now = now or timezone.now()
    host = normalise_host(host)
    plaintext = tokens.bearer_value(authorization)
    if plaintext is None:
        return Decision(401, "no bearer token")
    if tokens.parse_token(plaintext) is None:
        return Decision(401, "malformed token")
    refusal = path_refusal(path, raw_path)
    if refusal:
        # Before the cache: its key holds only the endpoint the path names, which is exactly
        # what a dot segment would lie about. Rare and audited: name the principal.
        result = tokens.authenticate_token(plaintext)
        if result is None:
            return Decision(401, "unknown, expired or revoked token, or deactivated user")
        user, token = result
        return Decision(403, refusal, principal=user.get_username(), user_id=user.pk,
                        token_prefix=token.display_prefix)
    cache = decision_cache()
    key = _cache_key(plaintext, host, path)
    ttl = _ttl()
    if ttl > 0:
        if cache_is_shared():
            values = cache.get_many([VERSION_KEY, key])
            version = values.get(VERSION_KEY)
            if version is None:
                cache.add(VERSION_KEY, time.time_ns(), timeout=None)
                version = cache.get(VERSION_KEY)
            entry = values.get(key)
        else:
            version = _db_version()
            entry = cache.get(key)
        if isinstance(entry, _Cached) and entry.version == version and entry.until > now.timestamp():
            decision = Decision(**{**entry.decision.__dict__, "cached": True})
            return decision
    result = tokens.authenticate_token(plaintext)
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
                from console.access.selectors import access_check

                decision.reason = access_check(user=user, obj=endpoint.load(), action="infer", now=now).reason
    if ttl > 0:
        cache.set(key, _Cached(version, until, decision), timeout=max(1, int(ttl) + 1))
    return decision


_caller_sql: str | None = None


def _infer_rows_sql() -> str:
    """One UNION ALL over the four direct-FK tables that can give ``infer`` on an endpoint
    (the endpoint's user and group rows, its project's user and group rows), unexpired rows
    only: exactly the rows ``console.permissions.visibility_filter`` reads, in one round trip
    and without the ORM's query-building cost (this is the cold path of every decision)."""
    global _caller_sql
    if _caller_sql is None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Permission

        from console.permissions import protection_for
        from endpoints.models import Endpoint, Project

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
    from django.utils.dateparse import parse_datetime

    parsed = parse_datetime(str(value))
    return parsed if parsed is None or timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def caller_access(user, endpoint, now: datetime) -> tuple[bool, datetime | None]:
    """(may ``user`` call ``endpoint``, until when): the Caller permission directly, through a
    team, through the endpoint's project, or as a platform admin. Agrees with
    ``console.permissions.can(user, endpoint, "infer")`` (tested); until is None when no
    expiry bounds it."""
    from console.permissions import is_platform_admin

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
    from audit import services as audit
    from audit.models import AuditEvent

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


@dataclass
class _Tally:
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    decision: Decision | None = None
    methods: set = field(default_factory=set)


class AllowTally:
    """In-memory counts of allowed requests per (principal, endpoint, minute), written to the
    audit trail as one event each once the minute is over (by a daemon thread, and at exit)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, int, int], _Tally] = {}
        self._thread: threading.Thread | None = None
        self.process = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def add(self, decision: Decision, *, method: str, at: float) -> None:
        minute = int(at // 60)
        key = (decision.user_id or 0, decision.endpoint_id or 0, minute)
        with self._lock:
            entry = self._counts.get(key)
            if entry is None:
                entry = self._counts[key] = _Tally(first=at, decision=decision)
            entry.count += 1
            entry.last = at
            entry.methods.add(method)
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is not None or not getattr(settings, "AUTHZ_FLUSH_THREAD", True):
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="authz-allow-tally", daemon=True)
                self._thread.start()
                atexit.register(self.flush, everything=True)

    def _run(self) -> None:  # pragma: no cover - exercised by the benchmark, not unit tests
        from django.db import connections

        interval = float(getattr(settings, "AUTHZ_ALLOW_FLUSH_SECONDS", 10))
        while True:
            time.sleep(interval)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - keep counting; the next pass retries
                logger.exception("writing aggregated authz allows failed")
            finally:
                connections.close_all()

    def pending(self) -> int:
        with self._lock:
            return sum(t.count for t in self._counts.values())

    def flush(self, *, now: float | None = None, everything: bool = False) -> int:
        """Write the events of finished minutes (all minutes with ``everything``)."""
        from audit import services as audit
        from audit.models import AuditEvent

        now = time.time() if now is None else now
        current = int(now // 60)
        with self._lock:
            done = {k: v for k, v in self._counts.items() if everything or k[2] < current}
            for key in done:
                del self._counts[key]
        written = 0
        for (user_id, endpoint_id, minute), tally in sorted(done.items(), key=lambda item: item[0][2]):
            decision = tally.decision
            start = datetime.fromtimestamp(minute * 60, tz=UTC)
            try:
                with transaction.atomic():
                    audit.record(
                        action="infer.allow", source=AuditEvent.Source.AUTHZ, outcome=audit.SUCCESS,
                        actor_name=decision.principal, target_type="endpoint", target_id=str(endpoint_id),
                        target_repr=decision.endpoint_repr, occurred_at=start,
                        external_id=f"allow:{user_id}:{endpoint_id}:{minute}:{self.process}",
                        details={"count": tally.count, "minute": start.isoformat(),
                                 "first": datetime.fromtimestamp(tally.first, tz=UTC).isoformat(),
                                 "last": datetime.fromtimestamp(tally.last, tz=UTC).isoformat(),
                                 "methods": sorted(tally.methods), "user_id": user_id,
                                 "project_id": decision.project_id, "project": decision.project_name,
                                 "token": decision.token_prefix, "process": self.process},
                        request_id="", source_ip=None, user_agent="",
                    )
                    written += 1
            except IntegrityError:  # pragma: no cover - the same minute flushed twice
                logger.warning("allow tally for %s already written", (user_id, endpoint_id, minute))
        return written


allow_tally = AllowTally()


# --- the HTTP view --------------------------------------------------------------------------------

def authz_prefix() -> str:
    return "/" + getattr(settings, "AUTHZ_PATH_PREFIX", "/authz/check").strip("/")


def original_path(request_path: str) -> str:
    prefix = authz_prefix()
    rest = request_path[len(prefix):] if request_path.startswith(prefix) else request_path
    return rest if rest.startswith("/") else "/" + rest


def raw_request_path(request) -> str | None:
    """The request's path exactly as sent (still percent-encoded, without the query), when the
    server reports it: gunicorn's ``RAW_URI``, uWSGI's and mod_wsgi's ``REQUEST_URI``, ASGI's
    ``raw_path``. None otherwise (Django's ``request.path`` is decoded: ``%2F`` reads as ``/``)."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if not raw:
        scope = getattr(request, "scope", None)
        raw_bytes = scope.get("raw_path") if isinstance(scope, dict) else None
        raw = raw_bytes.decode("latin-1") if raw_bytes else None
    if not raw:
        return None
    raw = raw.split("?", 1)[0]
    if not raw.startswith("/") and "://" in raw:  # absolute form: http://host/path
        rest = raw.split("://", 1)[1]
        raw = rest[rest.index("/"):] if "/" in rest else "/"
    return raw


def _respond(decision: Decision) -> HttpResponse:
    if decision.status == 200:
        response = HttpResponse(status=200)
        response[PRINCIPAL_HEADER] = decision.principal
        return response
    body = "Unauthorized: send Authorization: Bearer <API token>.\n" if decision.status == 401 else \
        "Forbidden: this principal may not call this endpoint.\n"
    response = HttpResponse(body, status=decision.status, content_type="text/plain")
    if decision.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="inference"'
    return response


def check_request(request) -> HttpResponse:
    """Decide one ext_authz check request (any method; the body is ignored)."""
    path = original_path(request.path)
    raw = raw_request_path(request)
    query = request.META.get("QUERY_STRING", "")
    host = request.META.get("HTTP_HOST", "")
    decision = decide(host=host, path=path, authorization=request.META.get("HTTP_AUTHORIZATION"),
                      raw_path=raw)
    full_path = f"{path}?{query}" if query else path
    if decision.allowed:
        allow_tally.add(decision, method=request.method, at=time.time())
    else:
        audit_denial(decision, method=request.method, host=host, path=full_path,
                     raw_path=raw if raw is not None and raw != request.path else None)
    return _respond(decision)


@csrf_exempt
def authz_view(request, path: str = ""):
    """``/authz/check/<original path>``: the URL route (the middleware below answers the same
    requests earlier, skipping sessions, CSRF and host validation)."""
    return check_request(request)


class AuthzMiddleware:
    """Answers ext_authz checks before the rest of the middleware stack: they carry the
    *inference* host (not one of ALLOWED_HOSTS, which Django would refuse with 400), no
    session and no CSRF token, and they are the console's hottest path."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.prefix = authz_prefix()

    def __call__(self, request):
        path = request.path_info
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return check_request(request)
        return self.get_response(request)
