"""Finding the endpoint an inference request is for: by host (status URL, Knative and
Standard forms, predictor and in-cluster hosts) or by path prefix; paths that are not
normalised are refused."""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from endpoints.models import Endpoint, EndpointStatus, Project

logger = logging.getLogger(__name__)

CLUSTER_LOCAL = "svc.cluster.local"


def normalise_host(host: str) -> str:
    host = (host or "").strip().lower().rstrip(".")
    if host.startswith("["):  # IPv6 literal: never an endpoint host
        return host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _path_template_regex() -> re.Pattern:
    return _compiled_template(getattr(settings, "AUTHZ_PATH_TEMPLATE", "/serving/{namespace}/{name}").rstrip("/"))


@functools.lru_cache(maxsize=8)
def _compiled_template(template: str) -> re.Pattern:
    # Once per template: building it was a third of a warm decision's time (profiled).
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
        return Endpoint.objects.select_related("project", "project__cluster").get(pk=self.pk)


def _served(ref: EndpointRef, host: str) -> bool:
    return host in _hosts(ref.name, ref.namespace, ref.domain, ref.urls)


def resolve_target(host: str, path: str = "") -> tuple[EndpointRef | None, str]:
    """(the endpoint, "") or (None, why not) for an inference request to ``host`` + ``path``.

    Without the path-routing prefix the host alone decides. With it the path names the
    endpoint and the host must agree: a host the endpoint is served under, or one that names
    no endpoint (the gateway's); a host that reads as another endpoint — one of KServe's host
    forms in a project's namespace, or another endpoint's status URL host — is refused rather
    than guessed (otherwise the gateway may route by the host while we decide by the path).

    Index lookups only: projects by namespace, then endpoints by (project, name); the observed
    status URL is scanned only for hosts in none of KServe's forms (a custom domain template)."""
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


def authz_prefix() -> str:
    return "/" + getattr(settings, "AUTHZ_PATH_PREFIX", "/authz/check").strip("/")


def original_path(request_path: str) -> str:
    prefix = authz_prefix()
    rest = request_path[len(prefix):] if request_path.startswith(prefix) else request_path
    return rest if rest.startswith("/") else "/" + rest


def origin_form(raw: str) -> str:
    """A request target as sent, reduced to its path: the query dropped, the absolute form
    (``http://host/path``) reduced to ``/path``; still percent-encoded."""
    raw = raw.split("?", 1)[0]
    if not raw.startswith("/") and "://" in raw:
        rest = raw.split("://", 1)[1]
        raw = rest[rest.index("/"):] if "/" in rest else "/"
    return raw
